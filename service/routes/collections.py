"""Collections: create, list, describe, drop."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response
from starlette.concurrency import run_in_threadpool

from indexer import Collection
from service.deps import CollectionDep, EngineDep
from service.filter_schema import FIELD_PATTERN
from service.responses import Json
from service.routing import ApiRouter
from service.schemas import (
    CollectionInfo,
    CollectionList,
    CreateCollection,
    FullTextDeclaration,
    PayloadIndexDeclaration,
)

router = ApiRouter(prefix="/collections", tags=["collections"])

# A payload field by dotted path; its rules are documented here, and checked by the engine
# (InvalidPayloadIndex).
FieldPath = Annotated[
    str,
    Path(
        description="a payload field, by dotted path", json_schema_extra={"pattern": FIELD_PATTERN}
    ),
]


def describe(collection: Collection) -> dict[str, object]:
    config = collection.config
    return {
        "name": config.name,
        "uid": collection.uid,
        "dim": config.dim,
        "metric": config.metric.value,
        "index": config.index.model_dump(),
        "embedder": config.embedder,
        "store_source": config.store_source,
        "thumbnails": config.thumbnails,
        "full_text": collection.full_text,
        "payload_indexes": collection.payload_indexes,
        "count": collection.count(),
        "serving": collection.index_info,
    }


@router.put(
    "/{name}",
    operation_id="create_collection",
    response_model=CollectionInfo,
    responses={
        201: {"model": CollectionInfo, "description": "Created"},
        409: {"description": "Another collection of that name (`CollectionExists`)"},
    },
)
def create_collection(name: str, body: CreateCollection, engine: EngineDep) -> Response:
    """Create a collection; repeating the same request is harmless (200), a different
    configuration under the same name is a 409 ``CollectionExists``."""
    existed = name in engine.list_collections()
    collection = engine.create_collection(
        name,
        body.dim,
        body.metric,
        body.index,
        embedder=body.embedder,
        store_source=body.store_source,
        thumbnails=body.thumbnails,
        full_text=body.full_text.declaration() if body.full_text is not None else None,
        payload_indexes=body.payload_indexes,
        exist_ok=True,
    )
    return Json(describe(collection), status_code=200 if existed else 201)


@router.get("", operation_id="list_collections", response_model=CollectionList)
def list_collections(engine: EngineDep) -> Response:
    """Names of all collections, sorted."""
    return Json({"collections": engine.list_collections()})


@router.get("/{name}", operation_id="get_collection", response_model=CollectionInfo)
def get_collection(collection: CollectionDep) -> Response:
    """A collection's configuration, size and the index serving it."""
    return Json(describe(collection))


@router.delete("/{name}", operation_id="delete_collection", status_code=204)
def delete_collection(name: str, engine: EngineDep) -> Response:
    """Drop a collection and all its points."""
    engine.drop_collection(name)
    return Response(status_code=204)


@router.put("/{name}/full_text", operation_id="set_full_text", response_model=CollectionInfo)
async def set_full_text(body: FullTextDeclaration, collection: CollectionDep) -> Response:
    """Declare the collection's full-text fields (replacing any before). Points written
    from now on are indexed with their write; the points already there are indexed in the
    background, in batches: ``full_text.state`` is ``indexing`` until they all are, and
    lexical search covers the ``indexed`` points meanwhile."""
    await run_in_threadpool(collection.set_full_text, body.declaration())
    return Json(describe(collection))


@router.delete("/{name}/full_text", operation_id="drop_full_text", response_model=CollectionInfo)
async def drop_full_text(collection: CollectionDep) -> Response:
    """Drop the collection's full-text fields and their index."""
    await run_in_threadpool(collection.set_full_text, None)
    return Json(describe(collection))


@router.put(
    "/{name}/payload_indexes/{field}",
    operation_id="create_payload_index",
    response_model=CollectionInfo,
)
async def create_payload_index(
    field: FieldPath, body: PayloadIndexDeclaration, collection: CollectionDep
) -> Response:
    """Index a payload field (a dotted path) for filters, replacing its index of another
    type. Filters whose every condition is on indexed fields are then answered without
    reading payloads. Points written from now on are indexed with their write; those
    already there in the background: ``payload_indexes[field].state`` is ``indexing``
    until they all are, and filters on the field read the payloads meanwhile."""
    await run_in_threadpool(collection.create_payload_index, field, body.type)
    return Json(describe(collection))


@router.delete(
    "/{name}/payload_indexes/{field}",
    operation_id="drop_payload_index",
    response_model=CollectionInfo,
)
async def drop_payload_index(field: FieldPath, collection: CollectionDep) -> Response:
    """Stop indexing a payload field; dropping one not indexed changes nothing."""
    await run_in_threadpool(collection.drop_payload_index, field)
    return Json(describe(collection))
