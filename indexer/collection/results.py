"""What a search's (scores, labels) become for callers: lists of hits, with payloads and
vectors read from the store when asked."""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate

import numpy as np
import orjson

from indexer.collector import collector_paused
from indexer.metric import Metric
from indexer.points import Hit, PointId, bare_hits, full_hits

Rows = Callable[[np.ndarray], dict[int, tuple[str, bytes | None]]]
"""label -> (payload JSON, vector blob or None) for those of the labels that exist."""


def hits(
    scores: np.ndarray,
    labels: np.ndarray,
    point_ids: Callable[[np.ndarray], list[PointId]],
    rows: Rows | None,
    with_payload: bool,
) -> list[list[Hit]]:
    """One list of hits per row of ``labels`` [nq, k] (-1 pads rows short of k), with
    payloads when ``with_payload`` and vectors when ``rows`` reads them."""
    width = labels.shape[1]
    counts: list[int] | None = None  # hits per row, where some row is short
    if width and not padded(labels):  # the usual case: every row full, nothing to mask
        hit_labels = labels.ravel()
        listed = scores.ravel().tolist()
    else:
        found = labels >= 0
        hit_labels = labels[found]
        listed = scores[found].tolist()
        counts = found.sum(1).tolist()
    # Hits are built in C-level passes over the batch (at ~10k hits a batch, a Python
    # loop per hit would cost a fifth of a fast FAISS search), with the garbage
    # collector paused: see indexer.collector.
    with collector_paused(len(hit_labels)):
        ids = point_ids(hit_labels)
        if rows is not None:
            by_label = rows(np.unique(hit_labels))
            fetched = [by_label.get(label) for label in hit_labels.tolist()]
            payloads = [orjson.loads(row[0]) if with_payload and row else None for row in fetched]
            vectors = [vector(row[1]) if row else None for row in fetched]
            built = full_hits(ids, listed, payloads, vectors)
        else:
            built = bare_hits(ids, listed)
        if counts is None:
            if len(labels) == 1:
                return [built]
            return [built[start : start + width] for start in range(0, len(built), width)]
        ends = list(accumulate(counts))
        return [built[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def padded(labels: np.ndarray) -> bool:
    """Whether some row of search results [nq, k] is short of k. Such a row ends in -1
    labels (FAISS's padding, and the engine's), so the last column tells, without
    counting each row's hits: a single query's few cost less than the counting."""
    if not labels.size:
        return False
    if len(labels) == 1:
        return bool(labels[0, -1] < 0)
    return bool(np.minimum.reduce(labels[:, -1]) < 0)


def score_grid(metric: Metric, distances: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A search's scores as float32 [nq, k], NaN where a row found fewer than k."""
    scores: np.ndarray = metric.scores(distances).astype(np.float32, copy=False)
    if padded(labels):
        scores[labels < 0] = np.nan
    return scores


def query_hits(
    distances: np.ndarray,
    labels: np.ndarray,
    metric: Metric,
    point_ids: Callable[[np.ndarray], list[PointId]],
) -> list[Hit]:
    """The hits, without payloads, of one query's FAISS distances and labels [k] (-1 pads
    a short row): :func:`hits` for the most common call, in plain Python, which costs
    less than numpy's calls for so few values."""
    scores = metric.score_list(distances.tolist())
    if len(labels) and labels[-1] < 0:  # short: -1 labels pad its end
        found = int(np.argmin(labels >= 0))
        scores, labels = scores[:found], labels[:found]
    return bare_hits(point_ids(labels), scores)


def vector(blob: bytes | None) -> np.ndarray | None:
    """A stored vector blob as a writable float32 array."""
    return None if blob is None else np.frombuffer(blob, dtype=np.float32).copy()
