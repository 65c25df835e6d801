"""Which route a request is for, decided before the router runs (for auth and metrics)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Match
from starlette.types import Scope


def endpoints(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, str]]:
    """Every ``(method, path template)`` the app serves; HEAD is left out (it is GET)."""
    for context in iter_route_contexts(routes):
        if context.path is None:
            continue
        for method in sorted(context.methods or ()):
            if method != "HEAD":
                yield method, context.path


_ROUTE_PATH = "vecserve.route_path"  # the answer, kept in the request's scope


def route_path(scope: Scope, routes: Sequence[BaseRoute]) -> str | None:
    """The path template of the route matching the request's path (and, preferably, its
    method), or None when no route matches the path. Matched once per request (the
    limits, auth and metrics middleware all ask) and kept in the scope."""
    if _ROUTE_PATH in scope:
        cached: str | None = scope[_ROUTE_PATH]
        return cached
    found = None
    for context in iter_route_contexts(routes):
        match, _ = context.matches(scope)
        if match is Match.FULL:
            found = context.path
            break
        if match is Match.PARTIAL and found is None:
            found = context.path
    scope[_ROUTE_PATH] = found
    return found


def allowed_methods(scope: Scope, routes: Sequence[BaseRoute]) -> list[str]:
    """The methods of the request's path (for a 405's ``Allow``): those of the most
    concrete template matching it, as OpenAPI reads paths (``/snapshots/restore`` before
    ``/snapshots/{snapshot}``)."""
    by_template: dict[str, set[str]] = {}
    for context in iter_route_contexts(routes):
        match, _ = context.matches(scope)
        if match is not Match.NONE and context.path is not None:
            by_template.setdefault(context.path, set()).update(context.methods or ())
    if not by_template:
        return []
    concrete = min(by_template, key=lambda template: template.count("{"))
    return sorted(by_template[concrete])
