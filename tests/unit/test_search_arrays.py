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


@pytest.mark.parametrize(
    "index",
    [
        {"kind": "flat"},
        {"kind": "hnsw"},
        {"kind": "ivf_flat", "nlist": 16},
        {"kind": "ivf_pq", "nlist": 16, "pq_m": 4},
    ],
)
def test_cosine_scores_do_not_depend_on_the_query_length(
    engine: Engine, index: dict[str, object]
) -> None:
    """Cosine queries of moderate length reach the index unnormalised and have their
    distances divided by their length; short and long ones are normalised first. Either
    way the hits and their scores are those of the unit query."""
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(12_000, 16)).astype(np.float32)
    col = engine.create_collection("len", dim=16, metric="cosine", index=index)
    col.upsert(list(range(len(vectors))), vectors)
    col.optimize()
    unit = rng.normal(size=(30, 16)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    assert col.index_info["family"] == index["kind"]
    expected_ids, expected_scores = col.search_arrays(unit, k=10)
    if index["kind"] == "flat":
        normed = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        truth = np.argsort(-(unit.astype(np.float64) @ normed.T), axis=1)[:, :10]
        assert expected_ids.astype(np.int64).tolist() == truth.tolist()
    for length in (1e-3, 0.05, 3.0, 900.0, 1e5):
        ids, scores = col.search_arrays(unit * np.float32(length), k=10)
        assert ids.tolist() == expected_ids.tolist(), length
        np.testing.assert_allclose(scores, expected_scores, atol=2e-6)
        hits = col.search(unit * np.float32(length), k=10, with_payload=False)
        assert [[h.id for h in row] for row in hits] == expected_ids.tolist()
        assert np.abs(scores).max() <= 1.0 + 1e-6


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_a_lone_search_with_payloads_answers_as_a_batch_does(engine: Engine, index: str) -> None:
    """One query with payloads takes the index's one-call way and reads its payloads
    itself: ids, scores and payloads must be what the same query in a batch gets."""
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    col = engine.create_collection("d", dim=8, metric="cosine", index=index)
    ids = [f"p{i}" if i % 2 else i for i in range(300)]
    col.upsert(ids, vectors, payloads=[{"n": i, "tag": f"t{i % 7}"} for i in range(300)])
    queries = rng.normal(size=(10, 8)).astype(np.float32)
    batched = col.search(queries, k=6)
    for query, expected in zip(queries, batched, strict=True):
        alone = col.search(query, k=6)[0]
        assert [(h.id, h.payload) for h in alone] == [(h.id, h.payload) for h in expected]
        np.testing.assert_allclose([h.score for h in alone], [h.score for h in expected], rtol=1e-5)
        assert all(h.vector is None for h in alone)
