"""Scroll pages of the points that the payload indexes matched, in id-key order, reading
no payload but those on the page."""

from __future__ import annotations

import heapq

import numpy as np

from indexer.collection.point_ids import PointIds
from indexer.indexes import LabelSet
from indexer.points import encode_id
from indexer.store import SqliteStore

# The store's keys are walked in batches of at least this many (and at most WALK_MAX),
# sized from the share of the points that match.
WALK_MIN, WALK_MAX = 256, 16_384

Row = tuple[int, str, str, bytes | None]  # label, id key, payload, vector (or None)


def page_of(
    store: SqliteStore,
    point_ids: PointIds,
    allowed: LabelSet,
    after_key: str | None,
    limit: int,
    with_vectors: bool,
) -> list[Row]:
    """Up to ``limit`` stored rows of the ``allowed`` labels with id keys after
    ``after_key``, in key order, as :meth:`SqliteStore.page` gives them.

    Few matches are sorted by key in memory (the ids are there); many are met by walking
    the store's key index (labels and keys, no row), which takes about limit / f keys for
    a fraction f of the points matching: the cheaper of the two, m against limit / f."""
    matching = len(allowed)
    if not matching:
        return []
    if limit * len(point_ids) <= matching * matching:
        found = _walked(store, allowed, after_key, limit, len(point_ids))
    else:
        found = _sorted(point_ids, allowed, after_key, limit)
    rows = store.rows(
        np.array([label for label, _ in found], dtype=np.int64), with_vectors=with_vectors
    )
    return [(label, key, *rows[label]) for label, key in found]


def _sorted(
    point_ids: PointIds, allowed: LabelSet, after_key: str | None, limit: int
) -> list[tuple[int, str]]:
    keyed = zip(allowed.labels.tolist(), map(encode_id, point_ids.ids(allowed.labels)), strict=True)
    if after_key is not None:
        keyed = ((label, key) for label, key in keyed if key > after_key)  # type: ignore[assignment]
    return heapq.nsmallest(limit, keyed, key=lambda pair: pair[1])


def _walked(
    store: SqliteStore, allowed: LabelSet, after_key: str | None, limit: int, total: int
) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    batch = min(WALK_MAX, max(WALK_MIN, 2 * limit * total // len(allowed)))
    while len(found) < limit:
        keys = store.keys_after(after_key, batch)
        if not keys:
            break
        labels = np.fromiter((label for label, _ in keys), dtype=np.int64, count=len(keys))
        for i in np.flatnonzero(allowed.contains(labels))[: limit - len(found)].tolist():
            found.append(keys[i])
        after_key = keys[-1][1]
        batch = min(WALK_MAX, 2 * batch)
    return found
