"""API keys, checked by the service's gateway middleware before a request's body is read.

A key comes as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. Read-write keys
(setting ``api_keys``) may call every route; read-only keys (``read_only_api_keys``) may
call the routes that change nothing. What each route needs is :data:`ROUTE_PERMISSIONS`,
keyed by method and path template; a route missing from it needs a read-write key, and is
named in a warning at start-up (and fails ``tests/integration/test_auth.py``).

Health checks, the API's description (OpenAPI, docs) and the console's static files are
open: they hold no data, and load balancers and SDK generators need them without a key.
``/metrics`` needs a key, read only enough: it names collections and their sizes
(Prometheus sends one with ``authorization: {credentials: KEY}``).

With no keys configured, auth is off and every request passes (``vecserve serve`` allows
that only on a loopback address unless told otherwise).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence

from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import Scope

from service.errors import error_response
from service.responses import Json
from service.routing import RouteTable, endpoints
from service.settings import Settings

log = logging.getLogger(__name__)


class Permission(enum.Enum):
    OPEN = "open"  # no key
    READ = "read"  # a read-only or a read-write key
    WRITE = "write"  # a read-write key


ROUTE_PERMISSIONS: Mapping[tuple[str, str], Permission] = {
    ("GET", "/healthz"): Permission.OPEN,
    ("GET", "/readyz"): Permission.OPEN,
    ("GET", "/openapi.json"): Permission.OPEN,
    ("GET", "/docs"): Permission.OPEN,
    ("GET", "/docs/oauth2-redirect"): Permission.OPEN,
    ("GET", "/docs/assets/{asset}"): Permission.OPEN,
    ("GET", "/redoc"): Permission.OPEN,
    # The console's static files: the page asks for a key before it shows any data.
    ("GET", "/console"): Permission.OPEN,
    ("GET", "/console/{asset}"): Permission.OPEN,
    ("GET", "/metrics"): Permission.READ,
    ("GET", "/collections"): Permission.READ,
    ("GET", "/collections/{name}"): Permission.READ,
    ("PUT", "/collections/{name}"): Permission.WRITE,
    ("DELETE", "/collections/{name}"): Permission.WRITE,
    ("PUT", "/collections/{name}/full_text"): Permission.WRITE,
    ("DELETE", "/collections/{name}/full_text"): Permission.WRITE,
    ("PUT", "/collections/{name}/payload_indexes/{field}"): Permission.WRITE,
    ("DELETE", "/collections/{name}/payload_indexes/{field}"): Permission.WRITE,
    ("PUT", "/collections/{name}/points"): Permission.WRITE,
    ("POST", "/collections/{name}/points/get"): Permission.READ,
    ("GET", "/collections/{name}/points/{point_id}"): Permission.READ,
    ("GET", "/collections/{name}/points/{point_id}/thumbnail"): Permission.READ,
    ("POST", "/collections/{name}/points/delete"): Permission.WRITE,
    ("POST", "/collections/{name}/points/scroll"): Permission.READ,
    ("POST", "/collections/{name}/search"): Permission.READ,
    ("POST", "/collections/{name}/search/batch"): Permission.READ,
    ("POST", "/collections/{name}/recommend"): Permission.READ,
    ("POST", "/collections/{name}/query"): Permission.READ,
    # A read-only key may read every point anyway, so it may list and download snapshots.
    ("GET", "/collections/{name}/snapshots"): Permission.READ,
    ("GET", "/collections/{name}/snapshots/{snapshot}"): Permission.READ,
    ("POST", "/collections/{name}/snapshots"): Permission.WRITE,
    ("DELETE", "/collections/{name}/snapshots/{snapshot}"): Permission.WRITE,
    ("POST", "/collections/{name}/snapshots/restore"): Permission.WRITE,
    # Embedding changes nothing, as a search by text does not.
    ("POST", "/v1/embeddings"): Permission.READ,
}


def permission_for(method: str, path: str) -> Permission:
    """What a route needs; a route missing from the table needs a read-write key."""
    return ROUTE_PERMISSIONS.get(("GET" if method == "HEAD" else method, path), Permission.WRITE)


def check_route_table(routes: Sequence[BaseRoute]) -> list[tuple[str, str]]:
    """Routes the table forgets (they need a read-write key), each logged as a warning;
    entries for routes that no longer exist are logged too."""
    served = set(endpoints(routes))
    forgotten = sorted(served - ROUTE_PERMISSIONS.keys())
    for method, path in forgotten:
        log.warning(
            "%s %s is not in auth.ROUTE_PERMISSIONS: it needs a read-write key", method, path
        )
    for method, path in sorted(ROUTE_PERMISSIONS.keys() - served):
        log.warning(
            "auth.ROUTE_PERMISSIONS names %s %s, which the app does not serve", method, path
        )
    return forgotten


class KeyRing:
    """The configured keys, compared in constant time."""

    def __init__(self, read_write: Sequence[str], read_only: Sequence[str]) -> None:
        # Comparing digests keeps every comparison the same length, so its time tells
        # nothing about a key's length or prefix.
        self._keys = [(_digest(k), Permission.WRITE) for k in read_write] + [
            (_digest(k), Permission.READ) for k in read_only
        ]

    def grant(self, key: str | None) -> Permission | None:
        """What ``key`` may do, or None for no key or an unknown one."""
        if key is None:
            return None
        presented = _digest(key)
        granted = None
        for digest, permission in self._keys:  # every key, no early exit
            if hmac.compare_digest(presented, digest):
                granted = permission
        return granted


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def presented_key(headers: Mapping[bytes, bytes]) -> str | None:
    """The key from ``Authorization: Bearer`` or, failing that, ``X-API-Key``."""
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return api_key or None


class ApiKeys:
    """The API key check of :class:`~service.gateway.Gateway`, made before the app reads
    the body: :meth:`refusal` is the 401 ``Unauthorized`` (no key, or an unknown one: the
    message says which) or 403 ``Forbidden`` (a read-only key on a write) to answer, or
    None to let the request through."""

    def __init__(self, settings: Settings, routes: RouteTable) -> None:
        # Built when the server starts (Starlette builds middleware on the first event,
        # lifespan startup), when every route is in ``routes``.
        self.routes = routes
        self.served = set(endpoints(routes.routes))
        check_route_table(routes.routes)
        self.keys: KeyRing | None = None
        if settings.auth_enabled:
            self.keys = KeyRing(
                [k.get_secret_value() for k in settings.api_keys],
                [k.get_secret_value() for k in settings.read_only_api_keys],
            )
            log.info(
                "auth is on: %d read-write and %d read-only API keys",
                len(settings.api_keys),
                len(settings.read_only_api_keys),
            )
        else:
            log.warning(
                "auth is OFF: no API keys configured (VECSERVE_API_KEYS), "
                "so every client can read, write and delete everything"
            )

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def refusal(self, scope: Scope, headers: Mapping[bytes, bytes]) -> Json | None:
        """The answer refusing an HTTP request (``headers``: its headers), or None."""
        if self.keys is None:
            return None
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        path = self.routes.template(scope)
        if path is not None and (method, path) in self.served:
            needed = permission_for(method, path)
        else:  # a path no route serves (404), or a method it does not take (405)
            needed = Permission.READ
        if needed is Permission.OPEN:
            return None
        key = presented_key(headers)
        granted = self.keys.grant(key)
        if granted is None:
            # Both are 401 Unauthorized; the message tells a missing key from a wrong one.
            message = (
                "no API key was sent: send `Authorization: Bearer KEY` or `X-API-Key: KEY`"
                if key is None
                else "the API key sent is not valid on this server"
            )
            response = error_response(Request(scope), 401, "Unauthorized", message)
            response.headers["WWW-Authenticate"] = 'Bearer realm="vecserve"'
            return response
        if needed is Permission.WRITE and granted is not Permission.WRITE:
            return error_response(
                Request(scope), 403, "Forbidden", "this API key is read-only; this route writes"
            )
        return None
