"""The API's routers, and which route a request is for, decided before the router runs
(for auth, limits and metrics).

Every routes module builds its router as an :class:`ApiRouter`, which makes two choices
for all of them:

- Request bodies are parsed by orjson (:class:`OrjsonRequest`), not the standard
  library's ``json``: orjson refuses what JSON does not allow and the engine could not
  store (a lone UTF-16 surrogate such as ``"\\ud800"``, ``NaN``, ``Infinity``, bytes that
  are not UTF-8), so such a body is a 422 ``InvalidRequest`` like any malformed JSON,
  and it parses faster. The body is parsed once, by FastAPI, before validation.
  Integers beyond 64 bits arrive as floats, as JavaScript reads them (an id that large
  is refused: ids are strings or 64-bit integers).
- A body sent as anything but JSON (``curl -d`` sends
  ``application/x-www-form-urlencoded``; some clients send no ``Content-Type``) is a 415
  ``UnsupportedMediaType`` that says to send ``Content-Type: application/json``, not a
  422 about the body's shape. It is not parsed anyway: browsers send such bodies across
  sites without a CORS preflight, and a server on loopback runs without API keys by
  default, so a web page could otherwise write to it (FastAPI's strict content type, and
  CVE-2021-32677).
- Every GET route answers HEAD too (the same status and headers, no body), as load
  balancers and ``curl -I`` expect; the HEAD routes stay out of the OpenAPI document.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterator, Sequence
from email.message import Message
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.types import DecoratedCallable
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope


class OrjsonRequest(Request):
    """A request whose JSON body is parsed by orjson."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            # orjson.JSONDecodeError is a json.JSONDecodeError, which FastAPI answers as
            # a validation error (a 422 ``InvalidRequest``).
            self._json = orjson.loads(await self.body())
        return self._json


@functools.lru_cache(maxsize=256)
def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` names JSON (``application/json``, ``.../*+json``), as
    FastAPI reads it. Clients send few distinct values: the answers are kept."""
    if content_type is None:
        return False
    header = Message()
    header["content-type"] = content_type
    subtype = header.get_content_subtype()
    return header.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def refuse_unless_json(content_type: str | None) -> None:
    """A 415 for a body not sent as JSON."""
    if not is_json(content_type):
        sent = f"it came as {content_type!r}" if content_type else "it came without one"
        raise HTTPException(
            415,
            f"send the body as JSON, with the header Content-Type: application/json ({sent})",
        )


class OrjsonRoute(APIRoute):
    """A route whose endpoint gets an :class:`OrjsonRequest`, and which refuses a body
    that is not sent as JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_json = self.body_field is not None

        async def handle(request: Request) -> Response:
            request = OrjsonRequest(request.scope, request.receive)
            # The body is read once: the handler gets it from the same request.
            if takes_json and await request.body():
                refuse_unless_json(request.headers.get("content-type"))
            return await handler(request)

        return handle


class ApiRouter(APIRouter):
    """The router of one resource: orjson bodies, and HEAD wherever GET is served."""

    def __init__(self, **options: Any) -> None:
        super().__init__(route_class=OrjsonRoute, **options)

    def get(self, path: str, **options: Any) -> Callable[[DecoratedCallable], DecoratedCallable]:
        register_get = super().get(path, **options)
        register_head = super().head(path, include_in_schema=False)

        def register(endpoint: DecoratedCallable) -> DecoratedCallable:
            register_get(endpoint)  # first: GET is matched before the HEAD twin
            return register_head(endpoint)

        return register


def endpoints(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, str]]:
    """Every ``(method, path template)`` the app serves; HEAD is left out (it is GET).

    Templates are written as OpenAPI writes them: ``{point_id}``, not ``{point_id:path}``."""
    for context in iter_route_contexts(routes):
        if context.path_format is None:
            continue
        for method in sorted(context.methods or ()):
            if method != "HEAD":
                yield method, context.path_format


_ROUTE_PATH = "vecserve.route_path"  # the answer, kept in the request's scope
_UNKNOWN = object()


class RouteTable:
    """The app's routes, and which route template a request is for (for auth, limits and
    metrics, before the router runs).

    Matching a path against every route costs more than a small search, so the answers
    are kept by method and path; at most ``keep`` of them (paths with ids in them are
    many), the lot forgotten when full."""

    def __init__(self, routes: Sequence[BaseRoute], keep: int = 4096) -> None:
        self.routes = routes
        self._keep = keep
        self._known: dict[tuple[str, str, str], str | None] = {}

    def template(self, scope: Scope) -> str | None:
        """The path template of the route matching the request's path (and, preferably,
        its method), or None when no route matches the path. Kept in the scope too, for
        the next middleware that asks."""
        if _ROUTE_PATH in scope:
            cached: str | None = scope[_ROUTE_PATH]
            return cached
        key = (scope["method"], scope.get("root_path", ""), scope["path"])
        found = self._known.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            found = route_path(scope, self.routes)
            if len(self._known) >= self._keep:
                self._known.clear()
            self._known[key] = found
        scope[_ROUTE_PATH] = found
        return found  # type: ignore[return-value]


def route_path(scope: Scope, routes: Sequence[BaseRoute]) -> str | None:
    """The path template of the route matching the request's path (and, preferably, its
    method), or None when no route matches the path (see :class:`RouteTable`, which keeps
    the answers)."""
    found = None
    for context in iter_route_contexts(routes):
        match, _ = context.matches(scope)
        if match is Match.FULL:
            return context.path_format
        if match is Match.PARTIAL and found is None:
            found = context.path_format
    return found


def allowed_methods(scope: Scope, routes: Sequence[BaseRoute]) -> list[str]:
    """The methods of the request's path (for a 405's ``Allow``): those of the most
    concrete template matching it, as OpenAPI reads paths (``/snapshots/restore`` before
    ``/snapshots/{snapshot}``)."""
    by_template: dict[str, set[str]] = {}
    for context in iter_route_contexts(routes):
        match, _ = context.matches(scope)
        if match is not Match.NONE and context.path_format is not None:
            by_template.setdefault(context.path_format, set()).update(context.methods or ())
    if not by_template:
        return []
    concrete = min(by_template, key=lambda template: template.count("{"))
    return sorted(by_template[concrete])
