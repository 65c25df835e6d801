"""A write's batch, checked and prepared before any lock is taken: ids encoded, texts and
images embedded, payloads serialised, thumbnails made, vectors prepared for the index."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.collection.config import CollectionConfig
from indexer.collection.validation import payload_json
from indexer.embedders import ImageInput, inputs
from indexer.errors import InvalidInput
from indexer.filters import SqlFilter, compile_filter
from indexer.points import (
    PointId,
    encode_id,
    ensure_lengths,
    validate_ids,
    vector_batch_and_squares,
)
from indexer.store import Transaction
from indexer.thumbnails import make_thumbnail

Embed = Callable[[str, Any], np.ndarray]
"""(input kind, the inputs) -> their vectors by the collection's embedder."""


@dataclass(frozen=True, slots=True)
class UpsertBatch:
    ids: list[PointId]
    keys: list[str]
    vectors: np.ndarray  # as given, for the store
    prepared: np.ndarray  # as the index takes them
    payloads: list[str]  # JSON texts
    payload_values: list[dict[str, Any] | None]  # the same, for the payload indexes
    thumbnails: list[bytes] | None


def prepare_upsert(
    config: CollectionConfig,
    embed: Embed,
    ids: Sequence[PointId],
    vectors: Any,
    payloads: Sequence[dict[str, Any] | None] | None,
    texts: Sequence[str] | None,
    images: Sequence[ImageInput] | None,
    store_source: bool | None,
) -> UpsertBatch:
    """The batch of :meth:`Collection.upsert`, or :class:`InvalidInput` for bad input."""
    checked = validate_ids(ids)
    if payloads is None:
        payloads = [None] * len(checked)
    kind, given = inputs.one_input("upsert", vectors, texts, images)
    thumbnails = None
    if kind != "vectors":
        ensure_lengths(kind, given, len(checked))
        vectors = embed(kind, given)
        if config.store_source if store_source is None else store_source:
            payloads = inputs.with_sources(payloads, kind, given)
        if kind == "images" and config.thumbnails:
            thumbnails = [make_thumbnail(image) for image in given]
    vecs, squares = vector_batch_and_squares(vectors, config.dim)
    ensure_lengths("vectors", vecs, len(checked))
    ensure_lengths("payloads", payloads, len(checked))
    payload_texts = [payload_json(p, i) for i, p in enumerate(payloads)]
    prepared = config.metric.prepare(vecs, squares)
    keys = [encode_id(i) for i in checked]
    return UpsertBatch(checked, keys, vecs, prepared, payload_texts, list(payloads), thumbnails)


def delete_target(
    ids: Sequence[PointId] | None, filter: dict[str, Any] | None
) -> tuple[list[str], SqlFilter | None]:
    """The keys, or the compiled filter, of :meth:`Collection.delete` (exactly one given)."""
    if (ids is None) == (filter is None):
        raise InvalidInput("delete takes either ids or a filter")
    compiled = compile_filter(filter) if filter is not None else None
    keys = [encode_id(i) for i in validate_ids(ids)] if ids is not None else []
    return keys, compiled


def delete_rows(
    txn: Transaction,
    keys: Sequence[str],
    compiled: SqlFilter | None,
    indexed: np.ndarray | None,
) -> np.ndarray:
    """Delete the target of :func:`delete_target` in ``txn``: the ``indexed`` labels that
    the payload indexes select for the filter where they can, else the rows the compiled
    filter matches, else those of ``keys``. Returns the labels deleted."""
    if indexed is not None:
        txn.delete_labels(indexed)
        return indexed
    if compiled is not None:
        return txn.delete_where(compiled.where, compiled.params)
    return txn.delete_keys(keys)
