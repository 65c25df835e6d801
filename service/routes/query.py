"""The query pipeline over HTTP: prefetch stages -> fusion -> rerank -> limit and offset.

The body is the engine's :class:`~indexer.query.plan.QueryPlan` as JSON; the engine runs
it (:meth:`Collection.query`). This route only turns HTTP encodings into engine values
(base64 images and vectors) and hits into JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from indexer import Collection, Hit
from indexer.query import QueryHit, QueryResult
from indexer.query.plan import (
    DenseQuery,
    HybridShortcut,
    QueryPlan,
    Stage,
    hybrid_plan,
    invalid_query,
)
from service.deps import CollectionDep, SettingsDep
from service.responses import Json
from service.routing import ApiRouter
from service.schemas import ErrorBody, QueryBody, QueryHits, Search, vector_field

router = ApiRouter(prefix="/collections/{name}", tags=["search"])


# A lexical stage (or a search's hybrid shortcut) on a collection without full-text fields.
NO_FULL_TEXT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": "A lexical search of a collection without full-text fields"
        " (`FullTextNotDeclared`)",
    }
}


@router.post("/query", operation_id="query", response_model=QueryHits, responses=NO_FULL_TEXT)
async def query(body: QueryBody, collection: CollectionDep, settings: SettingsDep) -> Response:
    """Hybrid retrieval in one request: prefetch stages (``dense`` by vector, text, image
    or point id; ``lexical`` by text, scored by BM25 over the collection's full-text
    fields), each with its own filter and limit, fused (``rrf``, ``dbsf`` or
    ``relative_score``), optionally reranked (a cross-encoder from the server's allowlist,
    or MMR for diversity), then paged by ``offset`` and ``limit``. With ``explain``, each
    hit says its rank and score in each stage. While a new full-text declaration is being
    indexed, ``full_text`` says how many points lexical stages covered. On a cluster
    router, with ``partial``, shards that cannot answer are left out and named in
    ``missing_shards`` (without it, such a query is a 503 ``ShardUnavailable``)."""
    plan = body.plan(settings.max_k)
    result = await run_in_threadpool(collection.query, plan)
    return Json(result_json(result))


async def search_as_query(body: Search, collection: Collection) -> Response:
    """A search with the ``hybrid`` shortcut, or one that accepts a ``partial`` answer:
    the plan it stands for (a plain search is the one-stage plan), run like any query."""
    try:  # the engine's bounds on query texts
        dense = search_dense(body)
        shortcut = (
            HybridShortcut.model_validate(body.hybrid.model_dump())
            if body.hybrid is not None
            else None
        )
    except ValidationError as exc:
        raise invalid_query(exc) from None
    if shortcut is not None:
        plan = hybrid_plan(
            dense,
            shortcut,
            body.k,
            filter=body.filter,
            with_payload=body.with_payload,
            with_vectors=body.with_vectors,
        )
    else:
        plan = QueryPlan(
            prefetch=[Stage(dense=dense)],
            filter=body.filter,
            limit=body.k,
            with_payload=body.with_payload,
            with_vectors=body.with_vectors,
        )
    plan = plan.model_copy(update={"partial": body.partial})
    result = await run_in_threadpool(collection.query, plan)
    return Json(result_json(result, body.vector_encoding))


def search_dense(body: Search) -> DenseQuery:
    has_vector = body.vector is not None or body.vector_b64 is not None
    return DenseQuery(
        vector=body.array().tolist() if has_vector else None,
        text=body.text,
        image=body.image_bytes() if body.image is not None else None,
        point_id=body.id,
        params=body.params,
    )


def result_json(result: QueryResult, encoding: Any = "float") -> dict[str, Any]:
    hits = hits_json(result.hits, encoding)
    for item, hit in zip(hits, result.hits, strict=True):
        if hit.explain is not None:
            item["explain"] = hit.explain
    out: dict[str, Any] = {"hits": hits}
    if result.full_text_partial is not None:
        out["full_text"] = result.full_text_partial
    if result.missing_shards is not None:
        out["missing_shards"] = result.missing_shards
    return out


def hits_json(hits: Sequence[Hit | QueryHit], encoding: Any) -> list[dict[str, Any]]:
    """Search's and query's hits as JSON: id, score, and payload and vector when asked."""
    out = []
    for hit in hits:
        item: dict[str, Any] = {"id": hit.id, "score": hit.score}
        if hit.payload is not None:
            item["payload"] = hit.payload
        if hit.vector is not None:
            key, value = vector_field(hit.vector, encoding)
            item[key] = value
        out.append(item)
    return out
