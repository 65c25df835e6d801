"""The routes that carry most of the traffic (searches, upserts), served without FastAPI's
per-request machinery.

FastAPI spends several times a small search's own cost on each request: matching the
route through its router tree, building the request, solving dependencies through its
general solver, validating, and the exception-handling layers around all that.
:class:`HotRoutes` is the innermost middleware, so API keys, limits, metrics and request
ids apply to these routes as to every other. For a request to one of the routes it was
given it does the same steps directly, with the route's own parts:

- the route's path pattern and methods (FastAPI's, as served);
- a body that is not JSON is refused (415) as :class:`~service.routing.OrjsonRoute` does,
  and JSON is parsed by orjson as there, a syntax error answered as FastAPI answers it;
- the body is validated by the route's own body field, FastAPI's validation with its
  error locations, so a 422 reads the same;
- the dependencies the endpoint declares are solved by calling them (each once a request);
  the route's endpoint function itself then runs, as FastAPI would run it;
- errors go to the app's own exception handlers; one without a handler propagates to the
  server's error middleware (a logged 500), as from any route.

The routes stay registered with FastAPI: they are in the OpenAPI document, and FastAPI
still serves what this does not take. A route whose endpoint needs what this does not
solve (query parameters, headers, a response parameter...) is refused when the app is
built, rather than served differently.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import RouteContext, iter_route_contexts
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.routing import refuse_unless_json

_BODY_UNREADABLE = "There was an error parsing the body"  # FastAPI's words


class _HotRoute:
    """One route's parts, taken from FastAPI's view of it."""

    def __init__(self, context: RouteContext, api: FastAPI) -> None:
        dependant: Dependant = context.dependant
        _check_supported(dependant, context.path_format)
        self.methods = frozenset(context.methods or ())
        self.regex = context.path_regex
        self.convertors = context.param_convertors
        self.dependant = dependant
        self.body_field = context.body_field
        self.api = api

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, params: dict[str, Any]
    ) -> None:
        scope["path_params"] = params
        request = Request(scope, receive)
        body = await self._body(request)
        values: dict[str, Any] = {}
        errors: list[Any] = []
        cache: dict[Callable[..., Any], Any] = {}
        await self._solve(self.dependant, request, params, values, errors, cache)
        if self.body_field is not None:
            if body is None:
                errors.append(_missing(("body",)))
            else:
                value, body_errors = self.body_field.validate(body, {}, loc=("body",))
                errors.extend(body_errors)
                values[self.body_field.name] = value
        if errors:
            raise RequestValidationError(errors, body=body)
        call = self.dependant.call
        assert call is not None
        if inspect.iscoroutinefunction(call):
            response = await call(**values)
        else:
            response = await run_in_threadpool(call, **values)
        await response(scope, receive, send)

    async def _body(self, request: Request) -> Any:
        """The parsed JSON body, or None when there is none."""
        try:
            raw = await request.body()
        except HTTPException:
            raise
        except Exception as exc:  # the client went away, or a limit stopped the read
            raise HTTPException(400, _BODY_UNREADABLE) from exc
        if self.body_field is None or not raw:
            return None
        refuse_unless_json(request.headers.get("content-type"))
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            error = {
                "type": "json_invalid",
                "loc": ("body", exc.pos),
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": exc.msg},
            }
            raise RequestValidationError([error], body=exc.doc) from exc

    async def _solve(
        self,
        dependant: Dependant,
        request: Request,
        params: dict[str, Any],
        values: dict[str, Any],
        errors: list[Any],
        cache: dict[Callable[..., Any], Any],
    ) -> None:
        """Fill ``values`` with what ``dependant`` takes: path parameters, the request, and
        its dependencies' results (each dependency called once a request)."""
        for sub in dependant.dependencies:
            assert sub.call is not None
            assert sub.name is not None
            call = self.api.dependency_overrides.get(sub.call, sub.call)
            if sub.use_cache and call in cache:
                values[sub.name] = cache[call]
                continue
            arguments: dict[str, Any] = {}
            sub_errors: list[Any] = []
            await self._solve(sub, request, params, arguments, sub_errors, cache)
            if sub_errors:  # not called; FastAPI goes on to report every error
                errors.extend(sub_errors)
                continue
            if inspect.iscoroutinefunction(call):
                result = await call(**arguments)
            else:
                result = await run_in_threadpool(call, **arguments)
            cache[call] = result
            values[sub.name] = result
        for field in dependant.path_params:
            loc = ("path", field.alias)
            value, field_errors = field.validate(params.get(field.alias), {}, loc=loc)
            errors.extend(field_errors)
            values[field.name] = value
        if dependant.request_param_name is not None:
            values[dependant.request_param_name] = request


def _check_supported(dependant: Dependant, path: str | None) -> None:
    """Refuse a route needing what :class:`_HotRoute` does not solve."""
    unsupported = (
        dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or len(dependant.body_params) > 1
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or dependant.own_oauth_scopes
        or (dependant.call is not None and inspect.isgeneratorfunction(dependant.call))
        or (dependant.call is not None and inspect.isasyncgenfunction(dependant.call))
    )
    if unsupported:
        raise TypeError(
            f"{path}: the hot path solves path parameters, the request and plain dependencies only"
        )
    for sub in dependant.dependencies:
        _check_supported(sub, path)


def _missing(loc: tuple[str, ...]) -> dict[str, Any]:
    """FastAPI's error for a required body that was not sent."""
    return {"type": "missing", "loc": loc, "msg": "Field required", "input": None}


class HotRoutes:
    """Serves the routes of ``endpoints`` (endpoint functions of ``api``'s routes) directly;
    passes every other request to ``app``. See the module docstring."""

    def __init__(self, app: ASGIApp, api: FastAPI, endpoints: Iterable[Callable[..., Any]]) -> None:
        self.app = app
        self.api = api
        wanted = set(endpoints)
        self.routes = [
            _HotRoute(context, api)
            for context in iter_route_contexts(api.routes)
            if context.endpoint in wanted
        ]
        served = {route.dependant.call for route in self.routes}
        if missing := wanted - served:
            raise ValueError(f"no route serves {sorted(f.__name__ for f in missing)}")
        # As Starlette's exception middleware sees them: the handler of Exception (or 500)
        # belongs to the server's error middleware, outside every other.
        self.handlers = {
            key: handler
            for key, handler in api.exception_handlers.items()
            if key not in (500, Exception)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                found = route.regex.match(scope["path"])
                if found is None or scope["method"] not in route.methods:
                    continue
                params = {
                    key: route.convertors[key].convert(value)
                    for key, value in found.groupdict().items()
                }
                await self._serve(route, scope, receive, send, params)
                return
        await self.app(scope, receive, send)

    async def _serve(
        self, route: _HotRoute, scope: Scope, receive: Receive, send: Send, params: dict[str, Any]
    ) -> None:
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await route.handle(scope, receive, tracking_send, params)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            if started:
                raise RuntimeError(
                    "Caught handled exception, but response already started."
                ) from exc
            request = Request(scope, receive)
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
            await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Callable[..., Any] | None:
        """The app's handler for ``exc``, looked up as Starlette does."""
        if isinstance(exc, HTTPException) and exc.status_code in self.handlers:
            return self.handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in self.handlers:
                return self.handlers[cls]
        return None
