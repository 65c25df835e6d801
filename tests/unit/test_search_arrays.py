"""``Collection.search_arrays`` answers the same as ``search``, as arrays."""

from __future__ import annotations

import numpy as np
import pytest

from indexer import Engine


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_search_arrays_equals_search(engine: Engine, metric: str) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    col = engine.create_collection("a", dim=16, metric=metric)
    ids = [f"p{i}" if i % 2 else i for i in range(500)]
    col.upsert(ids, vectors, payloads=[{"odd": i % 2 == 1} for i in range(500)])
    queries = rng.normal(size=(20, 16)).astype(np.float32)
    for filter in (None, {"odd": True}):
        found_ids, scores = col.search_arrays(queries, k=7, filter=filter)
        hits = col.search(queries, k=7, filter=filter, with_payload=False)
        assert found_ids.shape == scores.shape == (20, 7)
        assert scores.dtype == np.float32
        assert found_ids.tolist() == [[h.id for h in row] for row in hits]
        np.testing.assert_allclose(scores, [[h.score for h in row] for row in hits], rtol=1e-6)


def test_k_past_the_collection_size_gives_every_point(engine: Engine) -> None:
    col = engine.create_collection("b", dim=4, metric="l2")
    col.upsert(["x", "y", "z"], np.eye(4, dtype=np.float32)[:3])
    ids, scores = col.search_arrays(np.eye(4, dtype=np.float32)[:1], k=5)
    assert ids.shape == (1, 3)
    assert ids[0, 0] == "x"
    assert scores[0, 0] == pytest.approx(0.0)


def test_large_batches_read_ids_right_after_updates_and_deletes(engine: Engine) -> None:
    """Batches of 1,024 hits and more read ids from a label table: it must stay right as
    updates give points new labels and deletes leave gaps."""
    rng = np.random.default_rng(1)
    col = engine.create_collection("c", dim=8, metric="l2")
    ids = [f"p{i}" if i % 3 else i for i in range(400)]
    col.upsert(ids, rng.normal(size=(400, 8)).astype(np.float32))
    queries = rng.normal(size=(150, 8)).astype(np.float32)

    def check() -> None:
        # One query at a time (10 hits a call) reads ids from the label -> id dict, not
        # the table that batches read: the reference.
        expected = [[h.id for h in col.search(q, k=10, with_payload=False)[0]] for q in queries]
        for _ in range(2):  # the first call may build the table, the second reads it
            found, _ = col.search_arrays(queries, k=10)
            assert found.tolist() == expected
            hits = col.search(queries, k=10, with_payload=False)
            assert [[h.id for h in row] for row in hits] == expected

    check()
    col.upsert(ids[:60], rng.normal(size=(60, 8)).astype(np.float32))  # new labels
    check()
    col.delete(ids=ids[100:150])
    check()
