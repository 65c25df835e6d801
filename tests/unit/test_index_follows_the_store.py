"""The index holds what the store holds, whatever happens between them: a tombstone never
hides a live point, and no vector that is no point's enters an HNSW graph (one there can
cut live points off from every search)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import Collection, Engine
from indexer.collection.upkeep import IndexUpkeep
from indexer.indexes import FaissIndex
from indexer.store import SqliteStore, Transaction

DIM = 16
rng = np.random.default_rng(5)
DATA = rng.standard_normal((3_000, DIM)).astype(np.float32)  # a row is written once


def test_the_vectors_of_labels_deleted_meanwhile_are_left_out(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "points.sqlite")
    try:
        with store.transaction() as txn:
            labels, _ = txn.upsert(["a", "b", "c"], DATA[:3], ["{}"] * 3)
        with store.transaction() as txn:
            txn.delete_keys(["b"])
        # A caller listed the three labels before "b" went (as a rebuild's catch-up does,
        # outside the collection's locks): "b" must not come back with a made-up vector.
        [(found, vectors)] = list(store.iter_vectors(DIM, labels))
        assert found.tolist() == [labels[0], labels[2]]
        assert np.array_equal(vectors, DATA[[0, 2]])
    finally:
        store.close()


def test_a_point_deleted_while_a_rebuild_catches_up_leaves_no_vector_in_the_new_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Engine(tmp_path, background=False) as engine:
        col = engine.create_collection("c", dim=DIM, metric="cosine", index="hnsw")
        col.upsert(list(range(1_000)), DATA[:1_000])
        col.optimize()
        col.upsert(list(range(300)), DATA[1_000:1_300])  # 300 tombstones: a rebuild is due
        build, reconcile = IndexUpkeep.build, IndexUpkeep.reconcile
        rounds: list[int] = []

        def build_then_write(self: IndexUpkeep, *args: Any, **kwargs: Any) -> FaissIndex:
            index = build(self, *args, **kwargs)
            col.upsert(["late"], DATA[1_500:1_501])  # after the build read the store
            return index

        def delete_before_the_first_round(
            self: IndexUpkeep, index: FaissIndex, live: np.ndarray, stored: Any
        ) -> int:
            if not rounds:  # the first catch-up round, outside the locks: "late" is listed
                col.delete(["late"])
            rounds.append(len(live))
            return reconcile(self, index, live, stored)

        monkeypatch.setattr(IndexUpkeep, "build", build_then_write)
        monkeypatch.setattr(IndexUpkeep, "reconcile", delete_before_the_first_round)
        col.optimize()
        monkeypatch.undo()
        assert len(rounds) >= 2, "the rebuild did not catch up in a round outside the locks"
        held = col._index._physical_labels()
        assert np.isin(held, col._point_ids.live()).all(), (
            "the new index holds a vector for a label the store no longer had"
        )
        assert_serves_exactly_the_store(col)


def assert_serves_exactly_the_store(col: Collection) -> None:
    """Every stored point, and nothing else, is in the index, found by its own vector."""
    index = col._index
    live = col._point_ids.live()
    assert index.size == col.count() == len(live)
    assert np.array_equal(index.labels(), live), "the index serves other labels than the store"
    points = col.get([p.id for p in col.scroll(limit=10_000)[0]])
    vectors = np.stack([p.vector for p in points])
    hits = col.search(vectors, k=1, params={"ef_search": 1024}, with_payload=False)
    lost = [p.id for p, h in zip(points, hits, strict=True) if not h or h[0].id != p.id]
    assert not lost, f"live points not found by their own vector: {lost[:5]}"


def test_commit_failures_reopens_and_rebuilds_never_tombstone_a_live_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A random mix of the paths by which labels enter and leave an HNSW index; after each
    step the index serves exactly the store. Labels of a batch whose commit failed are
    handed out again by the store, so a tombstone left on them would hide the next batch;
    an index file is trusted as it was saved when it is current."""
    steps = np.random.default_rng(8)
    commit = Transaction.commit

    def failing_commit(self: Transaction) -> None:
        raise OSError("disk full")

    ids = list(range(200))  # live ids
    next_id, row = len(ids), len(ids)
    engine = Engine(tmp_path, background=False)
    try:
        col = engine.create_collection("c", dim=DIM, metric="cosine", index="hnsw")
        col.upsert(ids, DATA[: len(ids)])
        col.optimize()
        assert col.index_info["family"] == "hnsw"
        for step in range(40):
            action = ["upsert", "update", "delete", "reinsert", "fail", "reopen", "optimize"][
                step % 7 if step < 7 else int(steps.integers(7))
            ]
            n = int(steps.integers(1, 60))
            if action in ("upsert", "fail") or not ids:
                batch = list(range(next_id, next_id + n))
                if action == "fail":
                    monkeypatch.setattr(Transaction, "commit", failing_commit)
                    with pytest.raises(OSError, match="disk full"):
                        col.upsert(batch, DATA[row : row + n])
                    monkeypatch.setattr(Transaction, "commit", commit)
                else:
                    col.upsert(batch, DATA[row : row + n])
                    ids += batch
                    next_id += n
                row += n
            elif action == "update":
                chosen = [int(i) for i in steps.choice(ids, min(n, len(ids)), replace=False)]
                col.upsert(chosen, DATA[row : row + len(chosen)])
                row += len(chosen)
            elif action in ("delete", "reinsert"):
                chosen = [int(i) for i in steps.choice(ids, min(n, len(ids)), replace=False)]
                assert col.delete(chosen) == len(chosen)
                if action == "reinsert":  # the same ids again: new labels
                    col.upsert(chosen, DATA[row : row + len(chosen)])
                    row += len(chosen)
                else:
                    ids = [i for i in ids if i not in set(chosen)]
            elif action == "reopen":
                engine.close()
                engine = Engine(tmp_path, background=False)
                col = engine.get_collection("c")
            else:
                col.optimize()
            assert col.count() == len(ids), f"step {step} ({action})"
            assert_serves_exactly_the_store(col)
    finally:
        engine.close()
