"""Recommendation: points like the positive examples and unlike the negative ones.

Examples are point ids or vectors; example points never appear in the results.

- ``average`` searches from ``p + (p - n)``, with p and n the means of the positive and
  negative examples (made unit length for cosine); scores are ordinary search scores.
- ``best_score`` takes candidates near each positive example. One nearer (more similar) to
  its best positive than to every negative scores ``s(best positive similarity)`` in
  (0, 1); any other scores ``-s(best negative similarity)`` in (-1, 0), so points like a
  negative example rank last. s(x) = (x / (1 + |x|) + 1) / 2 keeps the order of
  similarities; for l2, similarity is minus the distance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from indexer.collection.validation import MAX_K
from indexer.errors import InvalidInput, PointNotFound
from indexer.indexes import LabelSet
from indexer.metric import Metric
from indexer.points import PointId, as_vector_batch, validate_id

Example = PointId | np.integer[Any] | Sequence[float] | np.ndarray
Strategy = Literal["average", "best_score"]
Search = Callable[[np.ndarray, int, LabelSet | None], tuple[np.ndarray, np.ndarray]]
"""(queries, k, allowed labels or None) -> FAISS-style (distances, labels)."""


def check_request(positive: Sequence[Example], strategy: str) -> None:
    """Raise :class:`InvalidInput` unless there is a positive example and a known strategy."""
    if len(positive) == 0:  # not `not positive`: an array of vectors has no truth value
        raise InvalidInput("recommend needs at least one positive example")
    if strategy not in ("average", "best_score"):
        raise InvalidInput(f"unknown strategy {strategy!r}; use 'average' or 'best_score'")


def examples(
    given: Sequence[Example],
    dim: int,
    metric: Metric,
    label_of: Callable[[PointId], int | None],
    stored: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Example vectors (prepared) and the sorted labels of those given as point ids;
    ``stored`` reads the vectors of labels."""
    vectors: list[np.ndarray] = []
    labels: list[int] = []
    for example in given:
        if isinstance(example, np.integer):
            example = int(example)
        if isinstance(example, str | int) and not isinstance(example, bool):
            label = label_of(validate_id(example))
            if label is None:
                raise PointNotFound(f"example point {example!r} does not exist")
            labels.append(label)
            vectors.append(stored(np.array([label], dtype=np.int64))[0])
        else:
            vectors.append(as_vector_batch(example, dim)[0])
    if not vectors:
        return np.empty((0, dim), dtype=np.float32), np.empty(0, dtype=np.int64)
    return metric.prepare(np.stack(vectors)), np.array(sorted(labels), dtype=np.int64)


def recommend(
    strategy: Strategy,
    positive: np.ndarray,
    negative: np.ndarray,
    exclude: np.ndarray,
    k: int,
    allowed: LabelSet | None,
    search: Search,
    stored: Callable[[np.ndarray], np.ndarray],
    metric: Metric,
) -> tuple[np.ndarray, np.ndarray]:
    """The best k as (scores [1, k'], labels [1, k']), from prepared example vectors;
    ``exclude`` (the examples given as points) is never among them. ``allowed``: the
    labels a filter matched, or None. See :meth:`Collection.recommend` for the strategies."""
    if allowed is not None and len(exclude):
        allowed = LabelSet(allowed.labels[~np.isin(allowed.labels, exclude)])
    wanted = k + (0 if allowed is not None else len(exclude))
    if strategy == "average":
        p = positive.mean(0)
        query = average_query((2 * p - negative.mean(0)) if len(negative) else p, metric)
        distances, labels = search(query[None, :], wanted, allowed)
        keep = ~np.isin(labels[0], exclude)
        return metric.scores(distances[:, keep][:, :k]), labels[:, keep][:, :k]
    _, found = search(positive, min(MAX_K, max(4 * wanted, 64)), allowed)
    candidates = np.setdiff1d(found[found >= 0], exclude)
    if not len(candidates):
        return np.empty((1, 0), np.float32), np.empty((1, 0), np.int64)
    scores = best_scores(positive, negative, metric.prepare(stored(candidates)), metric)
    order = np.argsort(-scores, kind="stable")[:k]
    return scores[order][None, :], candidates[order][None, :]


def average_query(query: np.ndarray, metric: Metric) -> np.ndarray:
    """The average strategy's query, of unit length for cosine so that its scores are
    cosine similarities like any search's."""
    if metric is not Metric.COSINE:
        return query
    if not np.linalg.norm(query) > 0:
        raise InvalidInput(
            "the positive and negative examples cancel out: their average has no "
            "direction to search in; use strategy 'best_score' or other examples"
        )
    prepared: np.ndarray = metric.prepare(query[None, :])[0]
    return prepared


def best_scores(
    positive: np.ndarray, negative: np.ndarray, candidates: np.ndarray, metric: Metric
) -> np.ndarray:
    """The best_score strategy's score of each candidate vector: ``squash`` of its best
    positive similarity where that beats every negative one, else minus ``squash`` of
    its best negative similarity."""
    best_pos = metric.similarities(positive, candidates).max(0)
    scores = squash(best_pos)
    if len(negative):
        best_neg = metric.similarities(negative, candidates).max(0)
        scores = np.where(best_pos > best_neg, scores, -squash(best_neg))
    return scores


def squash(similarity: np.ndarray) -> np.ndarray:
    """An order-keeping map of any similarity into (0, 1)."""
    return np.asarray((similarity / (1 + np.abs(similarity)) + 1) / 2)
