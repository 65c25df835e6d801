"""A value nested deep anywhere in a body is a 4xx with a stable error name, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.server import NewServer

NESTED = "<nested>"  # stands for the nested value in a body, which json cannot encode


def nested(depth: int, kind: str = "object") -> str:
    """JSON text of a value nested ``depth`` deep."""
    opening, closing = ('{"a":', "}") if kind == "object" else ("[", "]")
    return opening * depth + "1" + closing * depth


def post(http: httpx.Client, path: str, body: Any, value: str) -> httpx.Response:
    """POST ``body`` with ``value`` (JSON text) in place of :data:`NESTED`."""
    text = json.dumps(body).replace(json.dumps(NESTED), value)
    return http.post(path, content=text, headers={"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def http(new_server: NewServer) -> Iterator[httpx.Client]:
    with (
        new_server() as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        client.put("/collections/c", json={"dim": 2}).raise_for_status()
        points = [{"id": 1, "vector": [1.0, 0.0]}, {"id": 2, "vector": [0.0, 1.0]}]
        client.put("/collections/c/points", json={"points": points}).raise_for_status()
        yield client


ROUTES = {
    "search": ("/collections/c/search", {"vector": [1.0, 0.0]}),
    "scroll": ("/collections/c/points/scroll", {}),
    "delete": ("/collections/c/points/delete", {}),
    "recommend": ("/collections/c/recommend", {"positive": [1]}),
}
FILTERS = {
    "object in $eq": lambda value: {"o": {"$eq": value}},
    "object as equality": lambda value: {"o": value},
    "list as equality": lambda value: {"o": [value]},
    "object in $in": lambda value: {"o": {"$in": [value]}},
    "object in $and": lambda value: {"$and": [value]},
}


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("where", list(FILTERS))
@pytest.mark.parametrize("route", list(ROUTES))
def test_a_filter_value_nested_deep_is_an_invalid_filter_or_request(
    http: httpx.Client, route: str, where: str, depth: int
) -> None:
    path, body = ROUTES[route]
    response = post(http, path, {**body, "filter": FILTERS[where](NESTED)}, nested(depth))
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"] in ("InvalidFilter", "InvalidRequest")
    assert len(response.json()["message"]) < 300


BODIES = {
    "unknown field": ("/collections/c/search", {"vector": [1.0, 0.0], "extra": NESTED}),
    "vector": ("/collections/c/search", {"vector": NESTED}),
    "k": ("/collections/c/search", {"vector": [1.0, 0.0], "k": NESTED}),
    "params": ("/collections/c/search", {"vector": [1.0, 0.0], "params": NESTED}),
    "ids": ("/collections/c/points/get", {"ids": [NESTED]}),
    "example": ("/collections/c/recommend", {"positive": [NESTED]}),
    "batch": ("/collections/c/search/batch", {"searches": [NESTED]}),
}


@pytest.mark.parametrize("kind", ["object", "list"])
@pytest.mark.parametrize("where", list(BODIES))
def test_a_value_nested_deep_elsewhere_in_a_body_is_an_invalid_request(
    http: httpx.Client, where: str, kind: str
) -> None:
    path, body = BODIES[where]
    response = post(http, path, body, nested(1_000, kind))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "InvalidRequest"
    assert len(response.json()["message"]) < 300
