"""Index upkeep while a collection is in use: searches answer during a large upsert and
wait for a bulk load no more than the issue's bound, a delete costs no pass over the
index, close() leaves a nearly current index file alone, and a reopen adds to the index
only what its file lacks."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from indexer import Engine
from indexer.indexes import FaissIndex
from indexer.indexes.hnsw import HnswIndex
from indexer.indexes.tombstones import Tombstones
from indexer.store import Transaction

DIM = 32
rng = np.random.default_rng(11)
DATA = rng.standard_normal((3_000, DIM)).astype(np.float32)


def hnsw_collection(engine: Engine, n: int = len(DATA)):  # type: ignore[no-untyped-def]
    col = engine.create_collection("c", dim=DIM, metric="l2", index="hnsw")
    col.upsert(list(range(n)), DATA[:n])
    col.optimize()
    assert col.index_info["family"] == "hnsw"
    return col


def test_searches_answer_while_a_large_batch_enters_an_hnsw_index(tmp_path: Path) -> None:
    batch = np.random.default_rng(12).standard_normal((20_000, DIM)).astype(np.float32)
    with Engine(tmp_path, background=False) as engine:
        col = hnsw_collection(engine)
        writing = threading.Event()
        took: list[float] = []

        def write() -> None:
            writing.set()
            started = time.perf_counter()
            col.upsert(list(range(10_000, 10_000 + len(batch))), batch)
            took.append(time.perf_counter() - started)

        writer = threading.Thread(target=write)
        writer.start()
        writing.wait()
        waits: list[float] = []
        while writer.is_alive():
            # Queries for the batch's own points: a staged point that leaked into a
            # search would come first, and have no id yet.
            started = time.perf_counter()
            hits = col.search(batch[len(waits) % len(batch)], k=5, with_payload=False)
            waits.append(time.perf_counter() - started)
            assert all(isinstance(h.id, int) for h in hits[0])
        writer.join()
        assert col.count() == len(DATA) + len(batch)
        assert col.index_info["size"] == col.count()
        assert [h.id for h in col.search(batch[7], k=1)[0]] == [10_007]
    # The batch took the index seconds to add; searches went on meanwhile, each waiting
    # for a chunk at most, never for the whole batch.
    assert len(waits) >= 10, f"{len(waits)} searches during a {took[0]:.1f} s upsert"
    assert max(waits) < took[0] / 4, f"a search waited {max(waits):.2f} s of {took[0]:.1f} s"


def test_a_delete_does_not_list_the_labels_of_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Engine(tmp_path, background=False) as engine:
        col = hnsw_collection(engine)

        def no_listing(self: HnswIndex) -> np.ndarray:
            raise AssertionError("a single-id write listed every label of the index")

        monkeypatch.setattr(HnswIndex, "_physical_labels", no_listing)
        assert col.delete([5]) == 1
        col.upsert([6], DATA[6:7] + 1)
        monkeypatch.undo()
        assert col.index_info["size"] == col.count() == len(DATA) - 1
        assert [h.id for h in col.search(DATA[5], k=3)[0]].count(5) == 0
        assert col.search(DATA[6] + 1, k=1)[0][0].id == 6


def test_an_ivf_index_removes_points_through_its_direct_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without FAISS's direct map, removing one point from an IVF index scans every list
    (tens of milliseconds at 100,000 points): deletes, updates and a failed commit's
    given-up batch go through it, in a built index and in one read from its file."""
    data = np.random.default_rng(14).standard_normal((12_002, DIM)).astype(np.float32)
    spec = {"kind": "ivf_flat", "storage": "int8"}

    def direct_map(col: Any) -> Any:
        return faiss.extract_index_ivf(col._index._index).direct_map.type

    with Engine(tmp_path, background=False) as engine:
        col = engine.create_collection("c", dim=DIM, metric="l2", index=spec)
        col.upsert(list(range(12_000)), data[:12_000])
        col.optimize()
        assert col.index_info["family"] == "ivf_flat"
        assert direct_map(col) == faiss.DirectMap.Hashtable
    with Engine(tmp_path, background=False) as engine:
        col = engine.get_collection("c")
        assert direct_map(col) == faiss.DirectMap.Hashtable
        assert col.delete([5]) == 1
        col.upsert([6], data[6:7] + 1)
        commit = Transaction.commit

        def failing(self: Transaction) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(Transaction, "commit", failing)
        with pytest.raises(OSError, match="disk full"):
            col.upsert(["x", "y"], data[12_000:])
        monkeypatch.setattr(Transaction, "commit", commit)
        assert col.index_info["size"] == col.count() == 11_999
        assert col._index.labels().tolist() == sorted(col._point_ids.live().tolist())
        assert 5 not in [h.id for h in col.search(data[5], k=3, params={"nprobe": 64})[0]]
        assert col.search(data[6] + 1, k=1, params={"nprobe": 64})[0][0].id == 6


def test_close_leaves_a_nearly_current_index_file_alone(tmp_path: Path) -> None:
    with Engine(tmp_path, background=False) as engine:
        hnsw_collection(engine)
    index_file = tmp_path / "collections" / "c" / "index.vsi"
    saved = index_file.stat()
    with Engine(tmp_path, background=False) as engine:
        col = engine.get_collection("c")
        col.upsert([1], DATA[1:2] + 2)
        col.delete([2])
    assert index_file.stat().st_mtime_ns == saved.st_mtime_ns
    with Engine(tmp_path, background=False) as engine:  # the two writes are replayed
        col = engine.get_collection("c")
        assert col.index_info["size"] == col.count() == len(DATA) - 1
        assert col.search(DATA[1] + 2, k=1)[0][0].id == 1
        assert 2 not in [h.id for h in col.search(DATA[2], k=3)[0]]


def test_a_reopen_adds_only_what_the_index_file_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Engine(tmp_path, background=False) as engine:
        hnsw_collection(engine)
    with Engine(tmp_path, background=False) as engine:
        engine.get_collection("c").upsert(["new"], DATA[:1] + 3)
    added: list[int] = []
    add = FaissIndex.add

    def counted(self: FaissIndex, labels: np.ndarray, vectors: np.ndarray) -> None:
        added.extend(labels.tolist())
        add(self, labels, vectors)

    monkeypatch.setattr(FaissIndex, "add", counted)
    with Engine(tmp_path, background=False) as engine:
        col = engine.get_collection("c")
        assert col.search(DATA[0] + 3, k=1)[0][0].id == "new"
    assert len(added) == 1


def test_a_failed_commit_leaves_the_index_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Engine(tmp_path, background=False) as engine:
        col = hnsw_collection(engine, 1_500)
        commit = Transaction.commit

        def failing(self: Transaction) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(Transaction, "commit", failing)
        with pytest.raises(OSError, match="disk full"):
            col.upsert([0, "x"], DATA[1_500:1_502])
        monkeypatch.setattr(Transaction, "commit", commit)
        assert col.count() == col.index_info["size"] == 1_500
        assert col.search(DATA[0], k=1)[0][0].id == 0
        # The store hands the same labels out again: the given-up vectors must not
        # answer for them.
        col.upsert(["y", "z"], DATA[1_502:1_504])
        assert col.search(DATA[1_500], k=1, params={"ef_search": 512})[0][0].id != "y"
        assert col.search(DATA[1_502], k=1)[0][0].id == "y"
        assert col.index_info["size"] == col.count() == 1_502


def test_tombstones_are_derived_afresh_from_the_store(tmp_path: Path) -> None:
    with Engine(tmp_path, background=False) as engine:
        index = hnsw_collection(engine, 1_500)._index
    live = index.labels()
    index.remove(live[:10])
    index._dead.add(np.array([10_000_000]))  # a tombstone for a label it never held
    assert index.size == len(live) - 11
    missing = index.restrict_to(live[5:])  # 0-4 deleted; 5-9 live again
    assert len(missing) == 0
    assert index.labels().tolist() == live[5:].tolist()
    assert index.size == len(live) - 5


def test_tombstones_mark_count_and_select() -> None:
    dead = Tombstones(np.array([3, 9, 9, 700]))
    assert len(dead) == 3
    dead.add(np.array([3, 4]))
    assert len(dead) == 4
    assert dead.labels().tolist() == [3, 4, 9, 700]
    assert dead.contains(np.array([[3, -1], [5, 10**9]])).tolist() == [
        [True, False],
        [False, False],
    ]
    selector = dead.alive_selector()
    assert [selector.is_member(i) for i in (3, 5, 700, 701, 10**9)] == [
        False,
        True,
        False,
        True,
        True,
    ]


def test_searches_wait_under_100_ms_for_a_bulk_load_into_an_hnsw_index(tmp_path: Path) -> None:
    """The issue's bound, measured: the time each search waits for the collection's read
    lock (the wait for writes and upkeep, apart from the CPU that both share) while
    catalogue-like batches of 384-d points with payloads are staged and committed."""
    # An HNSW graph that takes each point a few milliseconds (a large index on a busy
    # machine): an upsert's chunks must go down to a point or two a hold.
    spec = {"kind": "hnsw", "hnsw_m": 48, "ef_construction": 512}
    dim, built, batch, batches = 384, 1_000, 500, 8
    data = np.random.default_rng(13).standard_normal((built + batch * batches, dim))
    data = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    payloads = [
        {"sku": f"SKU-{i:08d}", "price": i % 500, "in_stock": i % 5 != 0} for i in range(len(data))
    ]
    with Engine(tmp_path, background=False) as engine:
        col = engine.create_collection("c", dim=dim, metric="cosine", index=spec)
        col.upsert(list(range(built)), data[:built], payloads[:built])
        col.optimize()
        assert col.index_info["family"] == "hnsw"
        waits = timed_read_lock_waits(col)
        loading = threading.Event()
        loading.set()

        def probe() -> None:
            while loading.is_set():
                col.search(data[len(waits) % built], k=10, with_payload=False)
                time.sleep(0.002)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            for start in range(built, len(data), batch):
                stop = start + batch
                col.upsert(list(range(start, stop)), data[start:stop], payloads[start:stop])
        finally:
            loading.clear()
            prober.join()
        assert col.index_info["size"] == col.count() == len(data)
    waited = np.array(waits[prober])
    assert len(waited) >= 50, f"{len(waited)} searches during the load"
    p99 = float(np.percentile(waited, 99))
    assert p99 < 0.1, f"searches waited {p99 * 1e3:.0f} ms at p99, {waited.max() * 1e3:.0f} at most"


def timed_read_lock_waits(col: Any) -> dict[threading.Thread, list[float]]:
    """Record, by thread, how long each entry to ``col``'s read lock waited."""
    waits: dict[threading.Thread, list[float]] = defaultdict(list)
    read_side = col._rw.read()

    class TimedReadSide:
        def __enter__(self) -> None:
            started = time.perf_counter()
            read_side.__enter__()
            waits[threading.current_thread()].append(time.perf_counter() - started)

        def __exit__(self, *exc: object) -> None:
            read_side.__exit__(*exc)

    col._rw._read = TimedReadSide()
    return waits
