"""Limits that bound a request before a route sees it.

- Body size: :class:`BodyLimits` (applied by :class:`~service.gateway.Gateway`) answers
  413 ``RequestTooLarge`` when the declared ``Content-Length`` is over ``max_body_bytes``,
  before reading anything, and stops a body sent without a length (chunked) as soon as
  it grows past the limit. A snapshot upload, streamed to disk rather than held in
  memory, is bound by ``max_snapshot_bytes`` instead.
- Collection dimension and filter depth: checked while request bodies are parsed
  (:mod:`service.schemas` calls :func:`check_dim` and :func:`check_filter_depth`). The
  gateway makes the app's settings visible to them for the length of a request.

- Unread bodies: the gateway closes the connection after any answer sent before the
  request's body was read in full (401 and 403 from the API key check, 413, 404, 415, a
  refused restore...): ``Connection: close``, after which uvicorn (h11 and httptools
  alike) closes the connection once the answer is sent. Otherwise the server would go on
  reading, and discarding, whatever the client sends: gigabytes, or a chunked body
  without end.

The per-route limits (points per upsert, queries per batch, k, payload bytes) are checked
by the routes themselves.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from starlette.requests import Request
from starlette.types import Scope

from indexer.errors import InvalidFilter, InvalidInput
from service.errors import error_response
from service.responses import Json
from service.routing import RouteTable
from service.settings import Settings

# The serving app's settings during a request; None outside one (then only the engine's
# own bounds apply).
_settings: ContextVar[Settings | None] = ContextVar("vecserve_settings", default=None)

_LOGICAL = ("$and", "$or")


class BodyTooLarge(Exception):
    """Raised from ``receive`` to stop the app reading a body over the limit."""


class BodyLimits:
    """The body size limit of each request, and the 413 that answers one over it (see the
    module docstring; :class:`~service.gateway.Gateway` applies them)."""

    def __init__(self, settings: Settings, routes: RouteTable) -> None:
        self.settings = settings
        self.routes = routes
        self.streamed_bodies: dict[tuple[str, str | None], int] = {
            ("POST", "/collections/{name}/snapshots/restore"): settings.max_snapshot_bytes
        }

    def max_bytes(self, scope: Scope) -> int:
        route = (scope["method"], self.routes.template(scope))
        return self.streamed_bodies.get(route, self.settings.max_body_bytes)

    def too_large(self, scope: Scope, limit: int) -> Json:
        return error_response(
            Request(scope),
            413,
            "RequestTooLarge",
            f"the request body is over this server's limit of {limit} bytes",
        )

    def enter(self) -> Token[Settings | None]:
        """Make the settings visible to the body's checks for the request under way;
        :meth:`leave` with the token once it is answered."""
        return _settings.set(self.settings)

    @staticmethod
    def leave(token: Token[Settings | None]) -> None:
        _settings.reset(token)


def check_dim(dim: int) -> int:
    """A new collection's dimension is within ``max_dim``."""
    settings = _settings.get()
    if settings is not None and dim > settings.max_dim:
        raise InvalidInput(f"dim is {dim}; this server accepts at most {settings.max_dim}")
    return dim


def check_filter_depth(spec: dict[str, Any]) -> dict[str, Any]:
    """A filter nests no deeper than ``max_filter_depth``.

    Depth counts each ``$and``/``$or``/``$not`` level and each segment of a dotted field
    path: ``{"a": 1}`` is 1, ``{"a.b": 1}`` is 2, ``{"$or": [{"a": {"$not": {"$gt": 1}}}]}``
    is 3. Anything malformed is left for the engine's filter compiler to name.
    """
    settings = _settings.get()
    if settings is not None and filter_depth(spec, settings.max_filter_depth) > (
        settings.max_filter_depth
    ):
        raise InvalidFilter(
            f"the filter nests deeper than {settings.max_filter_depth} levels "
            "(counting $and, $or, $not and each part of a dotted field name)"
        )
    return spec


def filter_depth(spec: object, stop_after: int) -> int:
    """The depth of ``spec`` (see :func:`check_filter_depth`), or the first depth found
    past ``stop_after``: a hostile filter is not walked to its end."""
    deepest = 0
    pending: list[tuple[object, int, bool]] = [(spec, 0, False)]  # (node, depth, field ops?)
    while pending:
        node, depth, field_ops = pending.pop()
        deepest = max(deepest, depth)
        if deepest > stop_after:
            return deepest
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if field_ops:
                if key == "$not":
                    pending.append((value, depth + 1, True))
            elif key in _LOGICAL and isinstance(value, list):
                pending.extend((item, depth + 1, False) for item in value)
            elif key == "$not":
                pending.append((value, depth + 1, False))
            elif isinstance(key, str) and not key.startswith("$"):
                field_depth = depth + len(key.split("."))
                deepest = max(deepest, field_depth)
                pending.append((value, field_depth, True))
    return deepest
