"""Fusion: one ranking from the rankings of several stages.

Each stage hands over its hits best first: labels and scores, higher better. A point
missing from a stage contributes nothing from it. The fused score, higher better, means:

- ``rrf`` (reciprocal rank fusion): sum over stages of ``weight / (k + rank)``, rank from 1.
  Only ranks count, so stages with incomparable scores (cosine, BM25) mix safely; k (60 by
  default, as in the original paper) flattens the head of each ranking. At most
  ``sum(weights) / (k + 1)``.
- ``dbsf`` (distribution-based score fusion, as Qdrant does it): each stage's scores are
  mapped linearly so that mean - 3 std -> 0 and mean + 3 std -> 1 (a stage whose scores are
  all equal gives 0.5), then summed with the weights. Scores keep their spread, so a hit far
  ahead of the rest in one stage keeps that lead.
- ``relative_score`` (Weaviate's relativeScoreFusion): each stage's scores min-max scaled
  to [0, 1] (a lone or all-equal score is 1), then summed with the weights. With ``alpha``,
  dense stages weigh ``alpha`` and lexical ones ``1 - alpha`` (1 = dense only, 0 = lexical
  only), in place of their weights.

Ties keep the order of first appearance (earlier stages first), so fusion is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

FusionMethod = Literal["rrf", "dbsf", "relative_score"]
RRF_K = 60


@dataclass(frozen=True, slots=True)
class Ranking:
    """One stage's hits, best first."""

    labels: np.ndarray  # int64 [n]
    scores: np.ndarray  # float64 [n], higher is better


@dataclass(frozen=True, slots=True)
class Fused:
    """The fused ranking, best first, and where each of its points stood in each stage."""

    labels: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray  # int64 [n, stages]: rank from 1 in each stage, 0 where absent
    stage_scores: np.ndarray  # float64 [n, stages]: the stage's score, NaN where absent


def fuse(
    rankings: Sequence[Ranking],
    weights: Sequence[float],
    method: FusionMethod = "rrf",
    *,
    k: float = RRF_K,
) -> Fused:
    """Fuse ``rankings`` (one per stage) with one weight per stage by ``method``."""
    if len(rankings) != len(weights):
        raise ValueError("one weight per ranking")
    labels = _union(rankings)
    position = {label: i for i, label in enumerate(labels.tolist())}
    ranks = np.zeros((len(labels), len(rankings)), dtype=np.int64)
    stage_scores = np.full((len(labels), len(rankings)), np.nan)
    contributions = np.zeros((len(labels), len(rankings)))
    for s, ranking in enumerate(rankings):
        rows = np.fromiter(
            (position[label] for label in ranking.labels.tolist()),
            dtype=np.int64,
            count=len(ranking.labels),
        )
        ranks[rows, s] = np.arange(1, len(rows) + 1)
        stage_scores[rows, s] = ranking.scores
        contributions[rows, s] = weights[s] * _normalised(ranking, method, k)
    fused = contributions.sum(axis=1)
    order = np.argsort(-fused, kind="stable")
    return Fused(labels[order], fused[order], ranks[order], stage_scores[order])


def _union(rankings: Sequence[Ranking]) -> np.ndarray:
    seen: dict[int, None] = {}
    for ranking in rankings:
        seen.update(dict.fromkeys(ranking.labels.tolist()))
    return np.fromiter(seen, dtype=np.int64, count=len(seen))


def _normalised(ranking: Ranking, method: FusionMethod, k: float) -> np.ndarray:
    """Each hit's contribution before its stage's weight."""
    scores = np.asarray(ranking.scores, dtype=np.float64)
    if method == "rrf":
        return np.asarray(1.0 / (k + np.arange(1, len(scores) + 1)))
    if not len(scores):
        return scores
    if method == "dbsf":
        mean, std = scores.mean(), scores.std()
        if not std > 0:
            return np.full(len(scores), 0.5)
        return np.asarray((scores - (mean - 3 * std)) / (6 * std))
    low, high = scores.min(), scores.max()
    if not high > low:
        return np.ones(len(scores))
    return np.asarray((scores - low) / (high - low))
