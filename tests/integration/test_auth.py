"""API keys: every route of the app against no key, a wrong key, a read-only key and a
read-write key, over real HTTP. Routes come from the app itself, so a new route is in the
matrix, and in the permission table check, without anyone adding it here."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import httpx
import pytest

from service.app import create_app
from service.auth import ROUTE_PERMISSIONS, Permission, permission_for
from service.routing import endpoints
from service.settings import Settings
from tests.support.server import NewServer, Server

READ_WRITE = "rw-key-0123456789abcdef"
READ_ONLY = "ro-key-0123456789abcdef"
ENDPOINTS = sorted(endpoints(create_app(Settings()).routes))
KEYS: dict[str, dict[str, str]] = {
    "no key": {},
    "wrong key": {"Authorization": "Bearer not-a-key-0123456789"},
    "read-only key": {"X-API-Key": READ_ONLY},
    "read-write key": {"Authorization": f"Bearer {READ_WRITE}"},
}


def expected_status(permission: Permission, key: str) -> int | None:
    """401 or 403 when the request must be refused; None when it must get through."""
    if permission is Permission.OPEN or key == "read-write key":
        return None
    if key in ("no key", "wrong key"):
        return 401
    return 403 if permission is Permission.WRITE else None


@pytest.fixture(scope="module")
def auth_server(new_server: NewServer) -> Iterator[Server]:
    env = {"VECSERVE_API_KEYS": READ_WRITE, "VECSERVE_READ_ONLY_API_KEYS": READ_ONLY}
    with new_server(env) as server:
        yield server


@pytest.fixture
def items(auth_server: Server) -> None:
    """A collection named ``items`` with one point, whatever the test before did."""
    headers = KEYS["read-write key"]
    with httpx.Client(base_url=auth_server.url, headers=headers) as http:
        http.put("/collections/items", json={"dim": 2}).raise_for_status()
        points = [{"id": 1, "vector": [1.0, 0.0]}]
        http.put("/collections/items/points", json={"points": points}).raise_for_status()


def test_every_route_has_an_entry_in_the_permission_table() -> None:
    assert set(ENDPOINTS) == set(ROUTE_PERMISSIONS)


@pytest.mark.parametrize("key", list(KEYS))
@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_each_route_admits_exactly_the_keys_its_permission_allows(
    auth_server: Server, items: None, method: str, path: str, key: str
) -> None:
    url = re.sub(r"\{name\}", "items", path)
    url = re.sub(r"\{[^}]+\}", "missing", url)
    body = b"{}" if method in ("POST", "PUT") else None
    response = httpx.request(
        method,
        auth_server.url + url,
        headers={**KEYS[key], "content-type": "application/json"},
        content=body,
    )
    refused = expected_status(permission_for(method, path), key)
    if refused is None:
        assert response.status_code not in (401, 403), response.text
        return
    assert response.status_code == refused
    error = response.json()
    assert error["error"] == ("Unauthorized" if refused == 401 else "Forbidden")
    assert error["request_id"] == response.headers["x-request-id"]
    if refused == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_refused_write_changes_nothing(auth_server: Server, items: None) -> None:
    with httpx.Client(base_url=auth_server.url) as http:
        for key in ("no key", "wrong key", "read-only key"):
            refused = http.post(
                "/collections/items/points/delete", json={"ids": [1]}, headers=KEYS[key]
            )
            assert refused.status_code in (401, 403)
        count = http.get("/collections/items", headers=KEYS["read-only key"]).json()["count"]
    assert count == 1


def test_both_headers_and_any_bearer_spelling_carry_a_key(auth_server: Server) -> None:
    for headers in (
        {"Authorization": f"bearer {READ_WRITE}"},
        {"Authorization": f"Bearer  {READ_ONLY}"},
        {"X-API-Key": READ_WRITE},
    ):
        assert httpx.get(f"{auth_server.url}/collections", headers=headers).status_code == 200


def test_a_key_that_nearly_matches_is_refused(auth_server: Server) -> None:
    for near_miss in (READ_WRITE[:-1], READ_WRITE + "x", READ_WRITE.upper(), "Basic"):
        headers = {"Authorization": f"Bearer {near_miss}"}
        assert httpx.get(f"{auth_server.url}/collections", headers=headers).status_code == 401


def test_unknown_paths_and_methods_need_a_key_then_say_what_is_wrong(auth_server: Server) -> None:
    with httpx.Client(base_url=auth_server.url) as http:
        assert http.get("/no/such/route").status_code == 401
        assert http.request("OPTIONS", "/collections").status_code == 401
        read_only = KEYS["read-only key"]
        assert http.get("/no/such/route", headers=read_only).status_code == 404
        not_allowed = http.request("OPTIONS", "/collections/items", headers=read_only)
        assert not_allowed.status_code == 405
        assert not_allowed.headers["allow"] == "DELETE, GET, HEAD, PUT"


def test_the_key_is_checked_before_the_body_is_read(auth_server: Server) -> None:
    """A request announcing a gigabyte is refused on its headers alone."""
    host, port = "127.0.0.1", int(auth_server.url.rsplit(":", 1)[1])
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(
            b"PUT /collections/items/points HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
        )
        head = conn.recv(65536).decode("latin-1")
    assert head.startswith("HTTP/1.1 401")


def test_the_openapi_document_says_which_operations_need_a_key(auth_server: Server) -> None:
    document = httpx.get(f"{auth_server.url}/openapi.json").json()
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            permission = permission_for(method.upper(), path)
            assert (operation["security"] == []) == (permission is Permission.OPEN)
            assert ("403" in operation["responses"]) == (permission is Permission.WRITE)
