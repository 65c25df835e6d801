"""Search (single and batch) and recommend."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from indexer import Collection, Hit
from indexer.errors import InvalidK
from service.deps import CollectionDep, SettingsDep
from service.errors import RequestTooLarge
from service.responses import Json
from service.schemas import BatchHits, Hits, Recommend, Search, SearchBatch, stack

router = APIRouter(prefix="/collections/{name}", tags=["search"])


def hits_json(hits: list[Hit]) -> list[dict[str, Any]]:
    out = []
    for hit in hits:
        item: dict[str, Any] = {"id": hit.id, "score": hit.score}
        if hit.payload is not None:
            item["payload"] = hit.payload
        if hit.vector is not None:
            item["vector"] = hit.vector
        out.append(item)
    return out


def check_k(k: int, max_k: int) -> None:
    if k > max_k:
        raise InvalidK(f"k is {k}; this server answers at most k={max_k}")


def run_search(collection: Collection, search: Search) -> list[Hit]:
    common: dict[str, Any] = {
        "filter": search.filter,
        "params": search.params,
        "with_payload": search.with_payload,
        "with_vectors": search.with_vector,
    }
    if search.id is not None:  # "more like this point": the point itself is left out
        return collection.recommend([search.id], k=search.k, **common)
    return collection.search(search.array(), k=search.k, **common)[0]


@router.post("/search", operation_id="search", response_model=Hits)
def search(body: Search, collection: CollectionDep, settings: SettingsDep) -> Response:
    """The k nearest points to a vector, or to a stored point given by id."""
    check_k(body.k, settings.max_k)
    return Json({"hits": hits_json(run_search(collection, body))})


@router.post("/search/batch", operation_id="search_batch", response_model=BatchHits)
def search_batch(body: SearchBatch, collection: CollectionDep, settings: SettingsDep) -> Response:
    """Several searches in one request; vector searches that share k, filter and
    parameters run as one batch through the index."""
    if len(body.searches) > settings.max_queries_per_batch:
        raise RequestTooLarge(
            f"{len(body.searches)} searches in one batch; the limit is "
            f"{settings.max_queries_per_batch}"
        )
    for s in body.searches:
        check_k(s.k, settings.max_k)
    results: list[list[Hit] | None] = [None] * len(body.searches)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(body.searches):
        if s.id is None:
            key = s.model_dump_json(exclude={"vector", "vector_b64"})
            groups.setdefault(key, []).append(i)
        else:
            results[i] = run_search(collection, s)
    for members in groups.values():
        first = body.searches[members[0]]
        found = collection.search(
            stack([body.searches[i].array() for i in members]),
            k=first.k,
            filter=first.filter,
            params=first.params,
            with_payload=first.with_payload,
            with_vectors=first.with_vector,
        )
        for i, hits in zip(members, found, strict=True):
            results[i] = hits
    return Json({"results": [{"hits": hits_json(r or [])} for r in results]})


@router.post("/recommend", operation_id="recommend", response_model=Hits)
def recommend(body: Recommend, collection: CollectionDep, settings: SettingsDep) -> Response:
    """Points like the positive examples and unlike the negative ones (ids or vectors)."""
    check_k(body.k, settings.max_k)
    hits = collection.recommend(
        body.positive,
        body.negative,
        k=body.k,
        strategy=body.strategy,
        filter=body.filter,
        params=body.params,
        with_payload=body.with_payload,
        with_vectors=body.with_vector,
    )
    return Json({"hits": hits_json(hits)})
