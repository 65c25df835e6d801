"""Points: upsert, get, delete, scroll."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Response

from indexer import Point
from indexer.errors import InvalidInput
from service.deps import CollectionDep, SettingsDep
from service.errors import RequestTooLarge
from service.responses import Json
from service.schemas import (
    Deleted,
    DeletePoints,
    GetPoints,
    Points,
    Scroll,
    ScrollPage,
    Upsert,
    Upserted,
    stack,
)

router = APIRouter(prefix="/collections/{name}/points", tags=["points"])


def point_json(point: Point) -> dict[str, Any]:
    out: dict[str, Any] = {"id": point.id, "payload": point.payload}
    if point.vector is not None:
        out["vector"] = point.vector
    return out


@router.put("", operation_id="upsert_points", response_model=Upserted)
def upsert_points(body: Upsert, collection: CollectionDep, settings: SettingsDep) -> Response:
    """Insert or replace points; all of them or none. Durable when this returns.

    Points carry vectors, or (for a collection with an embedder) texts or images, which
    the collection's model embeds; one request holds points of one kind."""
    if len(body.points) > settings.max_points_per_upsert:
        raise RequestTooLarge(
            f"{len(body.points)} points in one upsert; "
            f"the limit is {settings.max_points_per_upsert}"
        )
    payloads = [p.payload for p in body.points]
    for i, payload in enumerate(payloads):
        if payload is not None and len(orjson.dumps(payload)) > settings.max_payload_bytes:
            raise RequestTooLarge(
                f"payload of point {i} is over the limit of {settings.max_payload_bytes} bytes"
            )
    ids = [p.id for p in body.points]
    kinds = {
        "text" if p.text is not None else "image" if p.image is not None else "vector"
        for p in body.points
    }
    if len(kinds) > 1:
        raise InvalidInput(
            "the points of one upsert are all vectors, all texts or all images; "
            "send each kind in its own request"
        )
    if kinds == {"text"}:
        texts = [p.text or "" for p in body.points]
        count = collection.upsert(
            ids, texts=texts, payloads=payloads, store_source=body.store_source
        )
    elif kinds == {"image"}:
        images = [p.image_bytes() for p in body.points]
        count = collection.upsert(
            ids, images=images, payloads=payloads, store_source=body.store_source
        )
    else:
        count = collection.upsert(ids, stack([p.array() for p in body.points]), payloads)
    return Json({"upserted": count})


@router.post("/get", operation_id="get_points", response_model=Points)
def get_points(body: GetPoints, collection: CollectionDep) -> Response:
    """Points by id, in the order asked; ids that do not exist are left out."""
    points = collection.get(body.ids, with_vectors=body.with_vector)
    return Json({"points": [point_json(p) for p in points]})


@router.post("/delete", operation_id="delete_points", response_model=Deleted)
def delete_points(body: DeletePoints, collection: CollectionDep) -> Response:
    """Delete points by ids or by filter; returns how many were deleted."""
    deleted = collection.delete(body.ids, filter=body.filter)
    return Json({"deleted": deleted})


@router.post("/scroll", operation_id="scroll_points", response_model=ScrollPage)
def scroll_points(body: Scroll, collection: CollectionDep) -> Response:
    """A page of points in a stable order; pass ``next_cursor`` back for the next page."""
    points, cursor = collection.scroll(
        body.limit, body.cursor, filter=body.filter, with_vectors=body.with_vector
    )
    return Json({"points": [point_json(p) for p in points], "next_cursor": cursor})
