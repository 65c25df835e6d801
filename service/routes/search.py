"""Search (single and batch) and recommend.

Searches go through the app's :class:`~service.batching.MicroBatcher`, which embeds and
searches concurrent requests to one collection together and answers each on its own.
"""

from __future__ import annotations

import numpy as np
from fastapi import Response
from starlette.concurrency import run_in_threadpool

from indexer import Collection, PointId
from indexer.errors import InvalidK, InvalidQuery
from service.batching import MicroBatcher, Query
from service.deps import BatcherDep, CollectionDep, SettingsDep
from service.errors import RequestTooLarge
from service.responses import Json
from service.routes.query import NO_FULL_TEXT, hits_json, search_as_query
from service.routing import ApiRouter
from service.schemas import (
    BatchHits,
    Example,
    Hits,
    ImageExample,
    Recommend,
    Search,
    SearchBatch,
    SearchHits,
    TextExample,
    VectorExample,
    decode_image,
)

router = ApiRouter(prefix="/collections/{name}", tags=["search"])


def check_k(k: int, max_k: int) -> None:
    if k > max_k:
        raise InvalidK(f"k is {k}; this server answers at most k={max_k}")


def to_query(search: Search) -> Query:
    """The batcher's query for a search body (base64 is decoded here, in the request)."""
    has_vector = search.vector is not None or search.vector_b64 is not None
    return Query(
        vector=search.array() if has_vector else None,
        text=search.text,
        image=search.image_bytes() if search.image is not None else None,
        point_id=search.id,
        k=search.k,
        filter=search.filter,
        params=search.params,
        with_payload=search.with_payload,
        with_vectors=search.with_vectors,
    )


@router.post("/search", operation_id="search", response_model=SearchHits, responses=NO_FULL_TEXT)
async def search(
    body: Search, collection: CollectionDep, settings: SettingsDep, batcher: BatcherDep
) -> Response:
    """The k nearest points to a vector, a text or an image (for a collection with an
    embedder), or to a stored point given by id. With ``hybrid``, a lexical (BM25) search
    of the full-text fields runs beside it and the two rankings are fused, as a two-stage
    ``/query`` would. On a cluster router, with ``partial``, shards that cannot answer are
    left out and named in ``missing_shards`` (without it, such a search is a 503
    ``ShardUnavailable``)."""
    check_k(body.k, settings.max_k)
    if body.hybrid is not None or body.partial:
        return await search_as_query(body, collection)
    hits = await batcher.search(collection, [to_query(body)])
    return Json({"hits": hits_json(hits[0], body.vector_encoding)})


@router.post("/search/batch", operation_id="search_batch", response_model=BatchHits)
async def search_batch(
    body: SearchBatch, collection: CollectionDep, settings: SettingsDep, batcher: BatcherDep
) -> Response:
    """Several searches in one request; those that share filter and parameters run as one
    batch through the index (with concurrent requests' searches too). If one search
    fails, the request fails with its error."""
    if len(body.searches) > settings.max_queries_per_batch:
        raise RequestTooLarge(
            f"{len(body.searches)} searches in one batch; the limit is "
            f"{settings.max_queries_per_batch}"
        )
    for s in body.searches:
        check_k(s.k, settings.max_k)
        if s.hybrid is not None or s.partial:
            raise InvalidQuery(
                "hybrid and partial are for single searches; send several to /search or /query"
            )
    results = await batcher.search(collection, [to_query(s) for s in body.searches])
    answers = zip(body.searches, results, strict=True)
    return Json({"results": [{"hits": hits_json(h, s.vector_encoding)} for s, h in answers]})


@router.post("/recommend", operation_id="recommend", response_model=Hits)
async def recommend(
    body: Recommend, collection: CollectionDep, settings: SettingsDep, batcher: BatcherDep
) -> Response:
    """Points like the positive examples and unlike the negative ones: ids, vectors (JSON
    arrays or ``{"vector_b64": ...}``), or texts and images (for a collection with an
    embedder)."""
    check_k(body.k, settings.max_k)
    positive, negative = await embedded_examples(batcher, collection, body.positive, body.negative)
    hits = await run_in_threadpool(
        collection.recommend,
        positive,
        negative,
        k=body.k,
        strategy=body.strategy,
        filter=body.filter,
        params=body.params,
        with_payload=body.with_payload,
        with_vectors=body.with_vectors,
    )
    return Json({"hits": hits_json(hits, body.vector_encoding)})


async def embedded_examples(
    batcher: MicroBatcher, collection: Collection, *groups: list[Example]
) -> list[list[PointId | list[float] | np.ndarray]]:
    """The example lists with every text and image replaced by its vector (embedded in
    one batch), and every base64 vector decoded."""
    out: list[list[PointId | list[float] | np.ndarray]] = []
    places: list[tuple[int, int]] = []
    sources: list[str | bytes] = []
    for g, group in enumerate(groups):
        resolved: list[PointId | list[float] | np.ndarray] = []
        for i, example in enumerate(group):
            if isinstance(example, VectorExample):
                resolved.append(example.array())
                continue
            if isinstance(example, TextExample):
                sources.append(example.text)
            elif isinstance(example, ImageExample):
                sources.append(decode_image(example.image))
            else:
                resolved.append(example)
                continue
            places.append((g, i))
            resolved.append([])  # its vector, once embedded
        out.append(resolved)
    if sources:
        vectors = await batcher.embed(collection, sources)
        for (g, i), vector in zip(places, vectors, strict=True):
            out[g][i] = vector
    return out
