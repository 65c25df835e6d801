"""The work of one micro-batch, in a worker thread (or on the event loop, for a small
batch of plain vector searches): the queries a batch carries, and how they are embedded
and searched together, each query's error kept to itself. The scheduling of batches is
:mod:`service.batching`'s."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from indexer import Collection, Hit, PointId, SearchParams
from indexer.embedders import Embedder, load_image
from indexer.points import as_vector_batch

__all__ = ["Item", "Query", "Target", "Work", "embed_texts", "on_collection"]

# What a lane batches for: a collection (searches, and embedding with its embedder), or an
# embedder of the allowlist alone (embedding only).
Target = Collection | Embedder


@dataclass(frozen=True, slots=True)
class Query:
    """One search: exactly one of ``vector``, ``text``, ``image`` (an encoded image file)
    or ``point_id``, and how to search."""

    vector: np.ndarray | None = None
    text: str | None = None
    image: bytes | None = None
    point_id: PointId | None = None
    k: int = 10
    filter: dict[str, Any] | None = None
    params: SearchParams | None = None
    with_payload: bool = True
    with_vectors: bool = False


@dataclass(slots=True)
class Item:
    query: Query
    search: bool  # False: only embed it (a recommend example)
    future: asyncio.Future[Any]


# The work of a batch, in a worker thread: each item's result or its exception.
Work = Callable[[Any, Sequence[Item]], list[Any]]


_MISSING = object()


def embed_texts(embedder: Embedder, items: Sequence[Item]) -> list[Any]:
    """The vector of each item's text, or its exception."""
    results: list[Any] = [_MISSING] * len(items)
    vectors: dict[int, np.ndarray] = {}
    texts = [(i, item.query.text or "") for i, item in enumerate(items)]
    _embed_each(embedder.embed_texts, texts, vectors, results)
    return [vectors[i] if result is _MISSING else result for i, result in enumerate(results)]


def on_collection(collection: Collection, items: Sequence[Item]) -> list[Any]:
    """A collection's batch. The collection is an engine's or, in a cluster's router, one
    spread over shards, which has the same methods."""
    results: list[Any] = [_MISSING] * len(items)
    vectors = _query_vectors(collection, items, results)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, item in enumerate(items):
        if results[i] is not _MISSING:
            continue  # failed already
        query = item.query
        if not item.search:
            results[i] = vectors[i]
        elif query.point_id is not None:
            results[i] = _attempt(_more_like_point, collection, query)
        else:
            groups.setdefault(_group_key(query, i), []).append(i)
    for members in groups.values():
        _search_group(collection, items, members, vectors, results)
    return results


def _query_vectors(
    collection: Collection, items: Sequence[Item], results: list[Any]
) -> dict[int, np.ndarray]:
    """The query vector of every item that has or needs one; errors go to ``results``."""
    vectors: dict[int, np.ndarray] = {}
    texts: list[tuple[int, str]] = []
    images: list[tuple[int, bytes]] = []
    for i, item in enumerate(items):
        query = item.query
        if query.vector is not None:
            try:
                vectors[i] = as_vector_batch(query.vector, collection.dim)[0]
            except Exception as exc:
                results[i] = exc
        elif query.text is not None:
            texts.append((i, query.text))
        elif query.image is not None:
            images.append((i, query.image))
    if not texts and not images:
        return vectors
    try:
        embedder = collection.embedder
    except Exception as exc:  # no embedder, or it cannot be loaded: every such query fails
        for i, _ in texts + images:
            results[i] = exc
        return vectors
    _embed_each(embedder.embed_texts, texts, vectors, results)
    decoded = []
    for i, image in images:
        try:
            # Bytes from a client: never a file path on this machine.
            decoded.append((i, load_image(image, allow_paths=False)))
        except Exception as exc:
            results[i] = exc
    _embed_each(embedder.embed_images, decoded, vectors, results)
    return vectors


def _embed_each(
    embed: Callable[[list[Any]], np.ndarray],
    inputs: list[tuple[int, Any]],
    vectors: dict[int, np.ndarray],
    results: list[Any],
) -> None:
    """Embed ``inputs`` in one call; if that fails, one by one to find the culprits."""
    if not inputs:
        return
    try:
        embedded = embed([value for _, value in inputs])
    except Exception:
        for i, value in inputs:
            try:
                vectors[i] = embed([value])[0]
            except Exception as exc:
                results[i] = exc
        return
    for (i, _), vector in zip(inputs, embedded, strict=True):
        vectors[i] = vector


def _group_key(query: Query, position: int) -> tuple[str, str]:
    """Queries with equal keys can be searched as one batch."""
    try:
        filter_key = orjson.dumps(query.filter, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        filter_key = f"#{position}"  # not JSON: searched alone, and refused by the engine
    params_key = query.params.model_dump_json() if query.params is not None else ""
    return filter_key, params_key


def _search_group(
    collection: Collection,
    items: Sequence[Item],
    members: list[int],
    vectors: dict[int, np.ndarray],
    results: list[Any],
) -> None:
    queries = [items[i].query for i in members]
    payloads = any(q.with_payload for q in queries)
    with_vectors = any(q.with_vectors for q in queries)
    # One query goes as one vector: the engine's quickest way for the most common search.
    batch = vectors[members[0]] if len(members) == 1 else np.stack([vectors[i] for i in members])
    try:
        found = collection.search(
            batch,
            k=max(q.k for q in queries),
            filter=queries[0].filter,
            params=queries[0].params,
            with_payload=payloads,
            with_vectors=with_vectors,
        )
    except Exception as exc:
        if len(members) == 1:
            results[members[0]] = exc
            return
        # Find which query caused it (a bad k, say): search each alone.
        for i, query in zip(members, queries, strict=True):
            results[i] = _attempt(_search_one, collection, query, vectors[i])
        return
    for i, query, hits in zip(members, queries, found, strict=True):
        results[i] = _trimmed(hits, query, payloads, with_vectors)


def _search_one(collection: Collection, query: Query, vector: np.ndarray) -> list[Hit]:
    return collection.search(
        vector,
        k=query.k,
        filter=query.filter,
        params=query.params,
        with_payload=query.with_payload,
        with_vectors=query.with_vectors,
    )[0]


def _more_like_point(collection: Collection, query: Query) -> list[Hit]:
    """The point itself is left out, as in recommend."""
    assert query.point_id is not None
    return collection.recommend(
        [query.point_id],
        k=query.k,
        filter=query.filter,
        params=query.params,
        with_payload=query.with_payload,
        with_vectors=query.with_vectors,
    )


def _trimmed(hits: list[Hit], query: Query, payloads: bool, vectors: bool) -> list[Hit]:
    """A group's answer as this query asked for it: its k, and no payloads or vectors
    (fetched for others in the group, ``payloads`` / ``vectors``) that it did not ask for."""
    hits = hits[: query.k]
    if (payloads and not query.with_payload) or (vectors and not query.with_vectors):
        hits = [
            Hit(
                hit.id,
                hit.score,
                hit.payload if query.with_payload else None,
                hit.vector if query.with_vectors else None,
            )
            for hit in hits
        ]
    return hits


def _attempt(work: Callable[..., Any], *args: Any) -> Any:
    """``work(*args)``, or the exception it raised."""
    try:
        return work(*args)
    except Exception as exc:
        return exc
