"""A single query's hits, built in plain Python, are the batch's to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from indexer import Engine
from indexer.collection.results import query_hits
from indexer.metric import Metric
from indexer.points import Hit


def distances_to_score() -> np.ndarray:
    """float32 distances of every kind: random, around the cosine bounds, zeros of both
    signs, slightly negative squared lengths, huge and tiny values, NaN."""
    rng = np.random.default_rng(7)
    special = [0.0, -0.0, 1.0, -1.0, 1.0000001, -1.0000001, -1e-7, 3.4e38, 1e-38, np.nan]
    return np.concatenate(
        [
            rng.standard_normal(2000).astype(np.float32),
            (rng.random(2000) * 1e4).astype(np.float32),
            np.array(special, dtype=np.float32),
        ]
    )


@pytest.mark.parametrize("metric", list(Metric))
def test_score_list_equals_scores_to_the_bit(metric: Metric) -> None:
    distances = distances_to_score()
    expected = metric.scores(distances).astype(np.float32)
    got = np.array(metric.score_list(distances.tolist()), dtype=np.float32)
    assert got.view(np.uint32).tolist() == expected.view(np.uint32).tolist()


def test_a_short_row_ends_its_hits_at_the_padding() -> None:
    distances = np.array([0.25, 4.0, 3.4e38, 3.4e38], dtype=np.float32)
    labels = np.array([7, 2, -1, -1])
    found = query_hits(distances, labels, Metric.L2, lambda ls: [f"p{i}" for i in ls])
    assert found == [Hit("p7", 0.5), Hit("p2", 2.0)]


@pytest.mark.parametrize("metric", list(Metric))
def test_a_query_searched_alone_scores_as_in_a_batch(engine: Engine, metric: str) -> None:
    rng = np.random.default_rng(3)
    col = engine.create_collection("c", dim=24, metric=metric, index="flat")
    col.upsert(list(range(300)), rng.standard_normal((300, 24), dtype=np.float32) * 3)
    queries = rng.standard_normal((20, 24), dtype=np.float32) * 2
    batch = col.search(queries, k=12, with_payload=False)
    for query, expected in zip(queries, batch, strict=True):
        alone = col.search(query, k=12, with_payload=False)[0]
        assert [(h.id, h.score) for h in alone] == [(h.id, h.score) for h in expected]
    ids, scores = col.search_arrays(queries[:1], k=12)
    assert [(h.id, h.score) for h in batch[0]] == list(zip(ids[0], scores[0].tolist(), strict=True))


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_a_lone_query_skips_deleted_points_and_asks_no_more_than_there_are(
    engine: Engine, index: str
) -> None:
    rng = np.random.default_rng(5)
    col = engine.create_collection("c", dim=8, metric="cosine", index=index)
    col.upsert(list(range(40)), rng.standard_normal((40, 8), dtype=np.float32))
    col.delete(list(range(0, 40, 2)))  # HNSW keeps them as tombstones
    queries = rng.standard_normal((5, 8), dtype=np.float32)
    for k in (10, 30):  # 30: more than the 20 points left
        batch = col.search(queries, k=k, with_payload=False)
        for query, expected in zip(queries, batch, strict=True):
            alone = col.search(query, k=k, with_payload=False)[0]
            assert [(h.id, h.score) for h in alone] == [(h.id, h.score) for h in expected]
            assert len(alone) == min(k, 20)
            assert all(h.id % 2 for h in alone)


@pytest.mark.parametrize("length", [1e-3, 1.0, 1e4])
def test_a_lone_cosine_query_of_any_length_scores_as_in_a_batch(
    engine: Engine, length: float
) -> None:
    rng = np.random.default_rng(6)
    col = engine.create_collection("c", dim=16, metric="cosine", index="flat")
    col.upsert(list(range(100)), rng.standard_normal((100, 16), dtype=np.float32))
    queries = rng.standard_normal((8, 16), dtype=np.float32)
    queries *= (length / np.linalg.norm(queries, axis=1))[:, None]
    batch = col.search(queries, k=10, with_payload=False)
    for query, expected in zip(queries, batch, strict=True):
        alone = col.search(query.tolist(), k=10, with_payload=False)[0]
        assert [(h.id, h.score) for h in alone] == [(h.id, h.score) for h in expected]


@pytest.mark.parametrize("metric", list(Metric))
def test_a_lone_query_as_arrays_equals_a_batch_of_one(engine: Engine, metric: str) -> None:
    rng = np.random.default_rng(8)
    col = engine.create_collection("c", dim=24, metric=metric, index="flat")
    col.upsert([f"p{i}" for i in range(50)], rng.standard_normal((50, 24), dtype=np.float32))
    for query in rng.standard_normal((10, 24), dtype=np.float32):
        ids, scores = col.search_arrays(query, k=7)
        batch_ids, batch_scores = col.search_arrays(query[None, :], k=7)
        assert ids.dtype == batch_ids.dtype
        assert ids.tolist() == batch_ids.tolist()
        assert scores.dtype == batch_scores.dtype
        assert scores.view(np.uint32).tolist() == batch_scores.view(np.uint32).tolist()
