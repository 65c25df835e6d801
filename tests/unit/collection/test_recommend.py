"""Recommendation strategies over a plain FAISS index and an array of stored vectors."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from indexer.collection.recommend import (
    average_query,
    best_scores,
    examples,
    recommend,
    squash,
)
from indexer.errors import InvalidInput, InvalidVector, PointNotFound
from indexer.indexes import LabelSet
from indexer.metric import Metric

DIM = 8


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return Metric.COSINE.prepare(
        np.random.default_rng(3).standard_normal((500, DIM)).astype(np.float32)
    )


def searcher(vectors: np.ndarray, metric: Metric = Metric.COSINE):  # type: ignore[no-untyped-def]
    """The recommend part's search: exact over ``vectors`` (labels are row numbers)."""

    def search(
        queries: np.ndarray, k: int, allowed: LabelSet | None
    ) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(len(vectors)) if allowed is None else allowed.labels
        distances, positions = faiss.knn(
            queries, vectors[labels], min(k, len(labels)), metric=metric.faiss_metric
        )
        return distances, labels[positions]

    return search


def stored_of(vectors: np.ndarray):  # type: ignore[no-untyped-def]
    return lambda labels: vectors[labels]


def test_examples_are_points_by_id_or_vectors(vectors: np.ndarray) -> None:
    labels = {"a": 4, 9: 2}
    got, ids = examples(
        ["a", np.int64(9), [1.0] * DIM], DIM, Metric.COSINE, labels.get, stored_of(vectors)
    )
    assert ids.tolist() == [2, 4]
    assert np.allclose(got[:2], vectors[[4, 2]])
    assert np.allclose(got[2], np.full(DIM, 1 / np.sqrt(DIM)))
    assert examples([], DIM, Metric.COSINE, labels.get, stored_of(vectors))[0].shape == (0, DIM)
    with pytest.raises(PointNotFound):
        examples(["missing"], DIM, Metric.COSINE, labels.get, stored_of(vectors))
    with pytest.raises(InvalidVector):
        examples([[0.0] * DIM], DIM, Metric.COSINE, labels.get, stored_of(vectors))


def test_average_searches_from_the_unit_average_and_leaves_out_examples(
    vectors: np.ndarray,
) -> None:
    pos, neg = vectors[[1, 2]], vectors[[3]]
    exclude = np.array([1, 2, 3])
    scores, labels = recommend(
        "average", pos, neg, exclude, 5, None, searcher(vectors), stored_of(vectors), Metric.COSINE
    )
    p = pos.mean(0)
    query = (2 * p - neg.mean(0)) / np.linalg.norm(2 * p - neg.mean(0))
    similarity = vectors @ query
    similarity[exclude] = -np.inf
    assert labels[0].tolist() == np.argsort(-similarity)[:5].tolist()
    assert np.allclose(scores[0], similarity[labels[0]], atol=1e-5)


def test_a_filter_leaves_examples_out_before_the_search(vectors: np.ndarray) -> None:
    allowed = LabelSet(np.arange(0, 20))
    _, labels = recommend(
        "average",
        vectors[[1]],
        vectors[:0],
        np.array([1]),
        30,
        allowed,
        searcher(vectors),
        stored_of(vectors),
        Metric.COSINE,
    )
    assert sorted(labels[0].tolist()) == [i for i in range(20) if i != 1]


def test_best_score_ranks_points_like_a_negative_last(vectors: np.ndarray) -> None:
    pos, neg = vectors[[10]], vectors[[11]]
    scores, labels = recommend(
        "best_score",
        pos,
        neg,
        np.array([10, 11]),
        500,
        None,
        searcher(vectors),
        stored_of(vectors),
        Metric.COSINE,
    )
    assert 10 not in labels[0]
    assert 11 not in labels[0]
    assert np.all(np.diff(scores[0]) <= 0)
    liked = (vectors[labels[0]] @ pos[0]) > (vectors[labels[0]] @ neg[0])
    assert np.all(scores[0][liked] > 0)
    assert np.all(scores[0][~liked] < 0)


def test_best_score_with_no_candidate_is_empty(vectors: np.ndarray) -> None:
    scores, labels = recommend(
        "best_score",
        vectors[[1]],
        vectors[:0],
        np.array([1]),
        5,
        LabelSet(np.empty(0, np.int64)),
        searcher(vectors),
        stored_of(vectors),
        Metric.COSINE,
    )
    assert scores.shape == labels.shape == (1, 0)


def test_cancelling_examples_have_no_average_for_cosine() -> None:
    with pytest.raises(InvalidInput, match="cancel out"):
        average_query(np.zeros(DIM, np.float32), Metric.COSINE)
    assert average_query(np.zeros(DIM, np.float32), Metric.DOT).tolist() == [0.0] * DIM


def test_squash_keeps_the_order_of_similarities_inside_zero_and_one() -> None:
    similarity = np.array([-1e6, -2.0, 0.0, 0.5, 3.0, 1e6])
    squashed = squash(similarity)
    assert np.all(np.diff(squashed) > 0)
    assert squashed.min() > 0
    assert squashed.max() < 1
    l2 = best_scores(np.zeros((1, 2)), np.empty((0, 2)), np.array([[1.0, 0], [3.0, 0]]), Metric.L2)
    assert l2[0] > l2[1] > 0  # for l2 nearer is more similar
