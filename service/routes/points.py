"""Points: upsert, get (many, or one by its path), delete, scroll."""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any, Literal

import orjson
from fastapi import Query, Response
from fastapi.exceptions import RequestValidationError

from indexer import Point, PointId
from indexer.errors import InvalidId, InvalidInput, InvalidPayload, PointNotFound
from indexer.points import decode_id, encode_id, validate_id
from service.deps import CollectionDep, SettingsDep
from service.errors import RequestTooLarge
from service.responses import Json
from service.routing import ApiRouter
from service.schemas import (
    VECTOR_ENCODING,
    WITH_VECTOR,
    WITH_VECTORS,
    Deleted,
    DeletePoints,
    GetPoints,
    PointOut,
    Points,
    Scroll,
    ScrollPage,
    Upsert,
    Upserted,
    VectorEncoding,
    stack,
    vector_field,
    with_vectors_of,
)

router = ApiRouter(prefix="/collections/{name}/points", tags=["points"])

# An integer as it prints: no sign but "-", no leading zeros, ASCII digits only.
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_CURSOR_VERSION = "v1"


def point_json(point: Point, encoding: VectorEncoding) -> dict[str, Any]:
    out: dict[str, Any] = {"id": point.id, "payload": point.payload}
    if point.vector is not None:
        key, value = vector_field(point.vector, encoding)
        out[key] = value
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
        if payload is None:
            continue
        try:
            size = len(orjson.dumps(payload))
        except TypeError as exc:  # nested deeper than orjson (and the store) can write
            raise InvalidPayload(f"payload of point {i} cannot be stored as JSON: {exc}") from None
        if size > settings.max_payload_bytes:
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
    points = collection.get(body.ids, with_vectors=body.with_vectors)
    return Json({"points": [point_json(p, body.vector_encoding) for p in points]})


# Before get_point, whose path takes the rest of the URL.
@router.get(
    "/{point_id:path}/thumbnail",
    operation_id="get_thumbnail",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
        404: {
            "description": "No such point (`PointNotFound`), or it has no thumbnail "
            "(`ThumbnailNotFound`)"
        },
    },
)
def get_thumbnail(
    point_id: str,
    collection: CollectionDep,
    id_type: Annotated[
        Literal["auto", "str"],
        Query(description="`str`: the id is a string, even when it looks like an integer"),
    ] = "auto",
) -> Response:
    """The thumbnail of an image point (a JPEG of at most 128 px a side), kept when the
    collection was made with ``thumbnails: true``. The id is read as by ``get_point``."""
    image = collection.thumbnail(path_id(point_id, id_type))
    return Response(image, media_type="image/jpeg")


@router.get("/{point_id:path}", operation_id="get_point", response_model=PointOut)
def get_point(
    point_id: str,
    collection: CollectionDep,
    with_vectors: Annotated[
        bool | None, Query(description=f"{WITH_VECTORS} (default false)")
    ] = None,
    with_vector: Annotated[bool | None, Query(description=WITH_VECTOR, deprecated=True)] = None,
    id_type: Annotated[
        Literal["auto", "str"],
        Query(description="`str`: the id is a string, even when it looks like an integer"),
    ] = "auto",
    vector_encoding: Annotated[VectorEncoding, Query(description=VECTOR_ENCODING)] = "float",
) -> Response:
    """One point by id; a 404 ``PointNotFound`` when there is none.

    The id is the rest of the path (percent-encoded where needed; a ``/`` may stay as it
    is). Written as an integer prints (``7``, ``-3``), it is an integer id; anything else
    (``a``, ``007``, ``7.0``) is a string id. The string id ``"7"`` is
    ``/points/7?id_type=str``."""
    try:
        vectors = with_vectors_of(with_vectors, with_vector)
    except ValueError as exc:
        error = {"type": "value_error", "loc": ("query", "with_vector"), "msg": str(exc)}
        raise RequestValidationError([error]) from None
    wanted = path_id(point_id, id_type)
    found = collection.get([wanted], with_vectors=vectors)
    if not found:
        raise PointNotFound(f"collection {collection.name!r} has no point with id {wanted!r}")
    return Json(point_json(found[0], vector_encoding))


def path_id(text: str, id_type: Literal["auto", "str"]) -> PointId:
    """The point id a path segment names (see :func:`get_point`)."""
    return int(text) if id_type == "auto" and _INTEGER.fullmatch(text) else text


@router.post("/delete", operation_id="delete_points", response_model=Deleted)
def delete_points(body: DeletePoints, collection: CollectionDep) -> Response:
    """Delete points by ids or by filter; returns how many were deleted."""
    deleted = collection.delete(body.ids, filter=body.filter)
    return Json({"deleted": deleted})


@router.post("/scroll", operation_id="scroll_points", response_model=ScrollPage)
def scroll_points(body: Scroll, collection: CollectionDep) -> Response:
    """A page of points in a stable order; pass ``next_cursor`` back for the next page.

    A cursor is opaque: one this server did not hand out is a 422 ``InvalidInput``."""
    after = decode_cursor(body.cursor) if body.cursor is not None else None
    points, key = collection.scroll(
        body.limit, after, filter=body.filter, with_vectors=body.with_vectors
    )
    cursor = encode_cursor(key) if key is not None else None
    points_out = [point_json(p, body.vector_encoding) for p in points]
    return Json({"points": points_out, "next_cursor": cursor})


def encode_cursor(key: str) -> str:
    """The engine's cursor (the key of the page's last id) as an opaque, versioned token."""
    return f"{_CURSOR_VERSION}.{base64.urlsafe_b64encode(key.encode()).decode()}"


def decode_cursor(token: str) -> str:
    """The engine's cursor in a token from :func:`encode_cursor`; raises
    :class:`InvalidInput` for anything else, rather than paging from an arbitrary key."""
    version, _, encoded = token.partition(".")
    try:
        key = base64.b64decode(encoded, altchars=b"-_", validate=True).decode()
        valid = version == _CURSOR_VERSION and encode_id(validate_id(decode_id(key))) == key
    except (ValueError, InvalidId):  # bad base64, UTF-8 or JSON are all ValueErrors
        valid = False
    if not valid:
        raise InvalidInput(
            "cursor is not one this server handed out: pass back next_cursor as it came"
        )
    return key
