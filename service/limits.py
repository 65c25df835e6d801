"""Limits that bound a request before a route sees it.

- Body size: :class:`RequestLimitsMiddleware` answers 413 ``RequestTooLarge`` when the
  declared ``Content-Length`` is over ``max_body_bytes``, before reading anything, and
  stops a body sent without a length (chunked) as soon as it grows past the limit. A
  snapshot upload, streamed to disk rather than held in memory, is bound by
  ``max_snapshot_bytes`` instead.
- Collection dimension and filter depth: checked while request bodies are parsed
  (:mod:`service.schemas` calls :func:`check_dim` and :func:`check_filter_depth`). The
  middleware makes the app's settings visible to them for the length of a request.

- Unread bodies: :class:`CloseUnreadBodyMiddleware` closes the connection after any
  answer sent before the request's body was read in full (401 and 403 from the API key
  check, 413, 404, 415, a refused restore...). Otherwise the server would go on reading,
  and discarding, whatever the client sends: gigabytes, or a chunked body without end.

The per-route limits (points per upsert, queries per batch, k, payload bytes) are checked
by the routes themselves.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indexer.errors import InvalidFilter, InvalidInput
from service.errors import error_response
from service.middleware import HttpMiddleware
from service.routing import RouteTable
from service.settings import Settings

# The serving app's settings during a request; None outside one (then only the engine's
# own bounds apply).
_settings: ContextVar[Settings | None] = ContextVar("vecserve_settings", default=None)

_LOGICAL = ("$and", "$or")


class _BodyTooLarge(Exception):
    """Raised from ``receive`` to stop the app reading a body over the limit."""


class CloseUnreadBodyMiddleware(HttpMiddleware):
    """Adds ``Connection: close`` to an answer started before the body was read to its
    end. Uvicorn (h11 and httptools alike) then closes the connection once the answer is
    sent, where it would otherwise keep the connection and drain the rest of the body."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        unread = b"transfer-encoding" in headers or declared not in (b"", b"0")

        async def tracking_receive() -> Message:
            nonlocal unread
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                unread = False  # the last part, or the client went away
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and unread:
                sent = list(message.get("headers", []))
                if not any(name.lower() == b"connection" for name, _ in sent):
                    message["headers"] = [*sent, (b"connection", b"close")]
            await send(message)

        await self.app(scope, tracking_receive, closing_send)


class RequestLimitsMiddleware(HttpMiddleware):
    def __init__(self, app: ASGIApp, settings: Settings, routes: RouteTable) -> None:
        super().__init__(app)
        self.settings = settings
        self.routes = routes
        self.streamed_bodies: dict[tuple[str, str | None], int] = {
            ("POST", "/collections/{name}/snapshots/restore"): settings.max_snapshot_bytes
        }

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (scope["method"], self.routes.template(scope))
        max_bytes = self.streamed_bodies.get(route, self.settings.max_body_bytes)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > max_bytes:
            await self._too_large(scope, receive, send, max_bytes)
            return
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # whatever the app makes of the aborted read, the answer is a 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        token = _settings.set(self.settings)
        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        finally:
            _settings.reset(token)
        if exceeded and not started:
            await self._too_large(scope, receive, send, max_bytes)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(
            Request(scope),
            413,
            "RequestTooLarge",
            f"the request body is over this server's limit of {limit} bytes",
        )
        await response(scope, receive, send)


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
