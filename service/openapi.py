"""The OpenAPI document, completed with what the layers around the routes answer.

FastAPI describes what each route returns when it succeeds. Every operation also gets:

- its error statuses, each with the :class:`~service.schemas.ErrorBody` shape: 422 where
  it takes a body or parameters (FastAPI's own 422 shape is replaced: validation failures
  are answered as ``InvalidRequest``), 400 and 413 where it takes a body, 415 where that
  body is JSON (sent as anything else: ``UnsupportedMediaType``), 404 where its
  path names a collection, and, when auth is on, 401 and (for writes) 403 as
  :data:`service.auth.ROUTE_PERMISSIONS` says;
- when auth is on, the two ways to send a key (bearer token, ``X-API-Key``) on every
  operation that needs one;
- what the server checks beyond the models' types, so that a client generated from the
  document sends only requests the server takes: the patterns of collection and snapshot
  names in paths, this server's limits (k, dim, points per upsert, searches per batch), its
  embedders (and which take images, as thumbnails need), its rerankers, and the snapshot
  checksum a restore needs.

Statuses a route declares itself (``responses=``) keep their description.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from indexer.engine import NAME_PATTERN
from indexer.points import MAX_ID_LENGTH
from indexer.snapshots import SNAPSHOT_NAME
from service.auth import Permission, permission_for
from service.schemas import ErrorBody
from service.settings import Settings

_ERROR_REF = "#/components/schemas/ErrorBody"
_DESCRIPTIONS = {
    400: "The body could not be read (`BadRequest`)",
    401: "No API key, or an unknown one (`Unauthorized`)",
    403: "A read-only API key on a route that writes (`Forbidden`)",
    404: "The collection does not exist (`CollectionNotFound`), or another named thing",
    413: "The body, or a count in it, is over one of the server's limits (`RequestTooLarge`)",
    415: "The body was not sent with `Content-Type: application/json` (`UnsupportedMediaType`)",
    422: "The request is invalid: `InvalidRequest` (not JSON, or not the shape asked for), "
    "or a precise name (`InvalidFilter`, ...)",
}
_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "an API key"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json``) return the completed document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate(), settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any], settings: Settings) -> dict[str, Any]:
    auth_enabled = settings.auth_enabled
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template=_ERROR_REF)
    _add_limits(schemas, settings)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            permission = permission_for(method.upper(), path)
            _add_errors(operation, permission, auth_enabled)
            _add_parameter_checks(operation)
            if auth_enabled:
                needs_key = permission is not Permission.OPEN
                operation["security"] = [{"bearer": []}, {"apiKey": []}] if needs_key else []
    if auth_enabled:
        document["components"]["securitySchemes"] = _SECURITY_SCHEMES
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{unused}"' not in json.dumps(document):
            schemas.pop(unused, None)
    return document


def _add_errors(operation: dict[str, Any], permission: Permission, auth_enabled: bool) -> None:
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    statuses = set()
    if has_body or parameters:
        statuses.add(422)
    if has_body:
        statuses.update((400, 413))
        if "application/json" in operation["requestBody"].get("content", {}):
            statuses.add(415)
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    if auth_enabled and permission is not Permission.OPEN:
        statuses.add(401)
        if permission is Permission.WRITE:
            statuses.add(403)
    responses = operation.setdefault("responses", {})
    for status in sorted(statuses):
        responses.setdefault(str(status), {"description": _DESCRIPTIONS[status]})
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:
            response["content"] = {"application/json": {"schema": {"$ref": _ERROR_REF}}}
            if status == "422" and response.get("description") == "Validation Error":
                response["description"] = _DESCRIPTIONS[422]


# What the server checks in path and query parameters (InvalidName, InvalidId, InvalidInput).
_PARAMETER_SCHEMAS: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "pattern": NAME_PATTERN.pattern},
    "snapshot": {"type": "string", "pattern": SNAPSHOT_NAME.pattern},
    "point_id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
    "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
}


def _add_parameter_checks(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        schema = _PARAMETER_SCHEMAS.get(parameter["name"])
        if schema is None:
            continue
        parameter["schema"] = {**schema, "title": parameter["schema"].get("title", "")}
        if parameter["name"] == "sha256":
            # Or as the X-Checksum-Sha256 header: one of the two is needed.
            parameter["required"] = True
            parameter.pop("description", None)
            parameter["description"] = (
                "SHA-256 of the tar file, hex (or send it as an X-Checksum-Sha256 header)"
            )


def _add_limits(schemas: dict[str, Any], settings: Settings) -> None:
    """This server's limits, embedders and rerankers, where the models name them."""
    for model in ("Search", "Recommend"):
        schemas[model]["properties"]["k"]["maximum"] = settings.max_k
    query = schemas["QueryBody"]["properties"]
    query["limit"]["maximum"] = settings.max_k
    query["offset"]["maximum"] = settings.max_k - 1  # offset + limit is at most max_k
    create = schemas["CreateCollection"]["properties"]
    create["dim"]["maximum"] = settings.max_dim
    create["embedder"]["enum"] = [e.name for e in settings.embedders] + [None]
    # Thumbnails are kept of images: only with an embedder that takes them.
    images = [e.name for e in settings.embedders if "image" in e.modalities]
    no_thumbnails = {"properties": {"thumbnails": {"const": False}}}
    schemas["CreateCollection"]["allOf"] = [
        {
            "anyOf": [
                no_thumbnails,
                {"required": ["embedder"], "properties": {"embedder": {"enum": images}}},
            ]
        }
        if images
        else no_thumbnails
    ]
    rerankers = [r.name for r in settings.rerankers]
    if rerankers:
        schemas["CrossEncoderRerank"]["properties"]["model"]["enum"] = rerankers
    else:  # no cross-encoder to name: MMR is the only rerank
        schemas["Rerank"]["properties"]["cross_encoder"] = {"type": "null"}
    schemas["Upsert"]["properties"]["points"]["maxItems"] = settings.max_points_per_upsert
    schemas["SearchBatch"]["properties"]["searches"]["maxItems"] = settings.max_queries_per_batch
    # On the list form of input (a top-level maxItems leaves a single text alone).
    schemas["EmbeddingsRequest"]["properties"]["input"]["maxItems"] = settings.max_queries_per_batch
