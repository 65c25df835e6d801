"""Maximal marginal relevance: a diverse order of candidates, so that product search and
recommendation do not return ten variants of one item.

Each step takes the candidate with the best ``lambda * relevance - (1 - lambda) *
redundancy``, where relevance is the candidate's score scaled to [0, 1] over the
candidates (min-max) and redundancy its highest cosine similarity to a candidate already
taken (from the stored vectors). ``lambda = 1`` keeps the order of the scores; lower values
trade relevance for diversity.
"""

from __future__ import annotations

import numpy as np

DEFAULT_LAMBDA = 0.5


def mmr_order(
    scores: np.ndarray,
    vectors: np.ndarray,
    lambda_: float = DEFAULT_LAMBDA,
    count: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(positions into the candidates in MMR order, their MMR scores), ``count`` of them
    (all by default). ``scores`` [n], higher better; ``vectors`` [n, d] of the candidates."""
    n = len(scores)
    count = n if count is None else min(count, n)
    if n == 0 or count == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    scores = np.asarray(scores, dtype=np.float64)
    low, high = scores.min(), scores.max()
    if low >= 0 and high > 0:
        relevance = scores / high
    else:
        relevance = (scores - low) / (high - low) if high > low else np.ones(n)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.asarray(vectors, dtype=np.float64) / np.where(norms > 0, norms, 1.0)
    similarity = unit @ unit.T
    redundancy = np.full(n, -np.inf)  # nothing taken yet: no redundancy
    taken = np.zeros(n, dtype=bool)
    order = np.empty(count, dtype=np.int64)
    values = np.empty(count)
    for step in range(count):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        value = lambda_ * relevance - (1 - lambda_) * penalty
        value[taken] = -np.inf
        best = int(np.argmax(value))  # first of equals: ties keep the score order
        order[step], values[step] = best, value[best]
        taken[best] = True
        redundancy = np.maximum(redundancy, similarity[best])
    return order, values
