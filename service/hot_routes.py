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


class _Needs:
    """What a callable (the endpoint or a dependency) takes, solved in this order: its
    dependencies' results, its path parameters, the request."""

    __slots__ = ("dependencies", "path_fields", "request_name")

    def __init__(self, dependant: Dependant) -> None:
        self.dependencies = [_Dependency(sub) for sub in dependant.dependencies]
        # A plain ``str`` parameter is the path's text as it is: nothing to validate.
        self.path_fields = [
            (field, field.field_info.annotation is str and not field.field_info.metadata)
            for field in dependant.path_params
        ]
        self.request_name = dependant.request_param_name

    async def solve(
        self,
        request: Request,
        params: dict[str, Any],
        values: dict[str, Any],
        errors: list[Any],
        cache: dict[Callable[..., Any], Any],
    ) -> None:
        """Fill ``values``; validation errors go to ``errors``, as FastAPI's solver puts
        them (a dependency whose own parameters fail is not called)."""
        for dependency in self.dependencies:
            if dependency.cached and dependency.call in cache:
                values[dependency.name] = cache[dependency.call]
                continue
            arguments: dict[str, Any] = {}
            own_errors: list[Any] = []
            await dependency.needs.solve(request, params, arguments, own_errors, cache)
            if own_errors:
                errors.extend(own_errors)
                continue
            if dependency.is_async:
                result = await dependency.call(**arguments)
            else:
                result = await run_in_threadpool(dependency.call, **arguments)
            cache[dependency.call] = result
            values[dependency.name] = result
        for field, plain in self.path_fields:
            value = params.get(field.alias)
            if not plain:
                loc = ("path", field.alias)
                value, field_errors = field.validate(value, {}, loc=loc)
                errors.extend(field_errors)
            values[field.name] = value
        if self.request_name is not None:
            values[self.request_name] = request


class _Dependency:
    __slots__ = ("cached", "call", "is_async", "name", "needs")

    def __init__(self, dependant: Dependant) -> None:
        assert dependant.call is not None
        assert dependant.name is not None
        self.name = dependant.name
        self.call = dependant.call
        self.is_async = inspect.iscoroutinefunction(dependant.call)
        self.cached = dependant.use_cache
        self.needs = _Needs(dependant)


_NO_BODY = object()


class _HotRoute:
    """One route's parts, taken from FastAPI's view of it."""

    def __init__(self, context: RouteContext) -> None:
        dependant: Dependant = context.dependant
        _check_supported(dependant, context.path_format)
        assert dependant.call is not None
        self.methods = frozenset(context.methods or ())
        self.regex = context.path_regex
        self.convertors = context.param_convertors
        self.endpoint = dependant.call
        self.is_async = inspect.iscoroutinefunction(dependant.call)
        self.needs = _Needs(dependant)
        self.body_field = context.body_field

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, params: dict[str, Any]
    ) -> None:
        scope["path_params"] = params
        request = Request(scope, receive)
        body = await self._body(request)
        values: dict[str, Any] = {}
        errors: list[Any] = []
        await self.needs.solve(request, params, values, errors, {})
        if self.body_field is not None:
            if body is _NO_BODY:
                errors.append(_missing(("body",)))
            else:
                value, body_errors = self.body_field.validate(body, {}, loc=("body",))
                errors.extend(body_errors)
                values[self.body_field.name] = value
        if errors:
            raise RequestValidationError(errors, body=None if body is _NO_BODY else body)
        if self.is_async:
            response = await self.endpoint(**values)
        else:
            response = await run_in_threadpool(self.endpoint, **values)
        await response(scope, receive, send)

    async def _body(self, request: Request) -> Any:
        """The parsed JSON body, or ``_NO_BODY`` when there is none."""
        try:
            raw = await request.body()
        except HTTPException:
            raise
        except Exception as exc:  # the client went away, or a limit stopped the read
            raise HTTPException(400, _BODY_UNREADABLE) from exc
        if self.body_field is None or not raw:
            return _NO_BODY
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


def _check_supported(dependant: Dependant, path: str | None) -> None:
    """Refuse a route needing what :class:`_HotRoute` does not solve."""
    call = dependant.call
    needs = {
        "query parameters": dependant.query_params,
        "headers": dependant.header_params,
        "cookies": dependant.cookie_params,
        "several bodies": len(dependant.body_params) > 1,
        "a websocket": dependant.websocket_param_name,
        "the connection": dependant.http_connection_param_name,
        "the response": dependant.response_param_name,
        "background tasks": dependant.background_tasks_param_name,
        "security scopes": dependant.security_scopes_param_name or dependant.own_oauth_scopes,
        "a dependency with yield": call is not None
        and (inspect.isgeneratorfunction(call) or inspect.isasyncgenfunction(call)),
    }
    if unsupported := [name for name, needed in needs.items() if needed]:
        raise TypeError(
            f"{path} needs {', '.join(unsupported)}: the hot path solves path parameters, "
            "the request, one JSON body and plain dependencies only"
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
            _HotRoute(context)
            for context in iter_route_contexts(api.routes)
            if context.endpoint in wanted
        ]
        served = {route.endpoint for route in self.routes}
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
        # With dependency overrides (tests), FastAPI's solver is the one that knows them.
        if scope["type"] == "http" and not self.api.dependency_overrides:
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
