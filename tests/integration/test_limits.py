"""Request limits: each one at its maximum is served, one past it is refused with a stable
error name, and a refused write leaves nothing behind."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.support.collections import client_on_fresh
from tests.support.server import NewServer, Server

MAX_BODY = 4096
LIMITS = {
    "VECSERVE_MAX_BODY_BYTES": str(MAX_BODY),
    "VECSERVE_MAX_POINTS_PER_UPSERT": "5",
    "VECSERVE_MAX_QUERIES_PER_BATCH": "3",
    "VECSERVE_MAX_K": "7",
    "VECSERVE_MAX_DIM": "8",
    "VECSERVE_MAX_FILTER_DEPTH": "3",
    "VECSERVE_MAX_PAYLOAD_BYTES": "100",
}


@pytest.fixture(scope="module")
def limited(new_server: NewServer) -> Iterator[Server]:
    with new_server(LIMITS) as server:
        yield server


@pytest.fixture
def http(limited: Server) -> Iterator[httpx.Client]:
    """A client on a fresh ``items`` collection (dim 2) holding one point."""
    points = [{"id": 0, "vector": [0, 0], "payload": {"deep": {"er": 1}}}]
    config = {"dim": 2, "metric": "l2"}
    yield from client_on_fresh(limited.url, "/collections/items", config, points)


def count(http: httpx.Client) -> int:
    return int(http.get("/collections/items").json()["count"])


def refused(response: httpx.Response, status: int, name: str) -> bool:
    body = response.json()
    return response.status_code == status and body["error"] == name and bool(body["message"])


def points(n: int) -> list[dict[str, object]]:
    return [{"id": i + 1, "vector": [i, 1]} for i in range(n)]


def padded_upsert(size: int) -> bytes:
    """An upsert of one point, padded with JSON whitespace to exactly ``size`` bytes."""
    body = json.dumps({"points": points(1)}).encode()
    return body + b" " * (size - len(body))


def put_raw(http: httpx.Client, content: object) -> httpx.Response:
    return http.put(
        "/collections/items/points",
        content=content,  # type: ignore[arg-type]
        headers={"content-type": "application/json"},
    )


def test_body_size_is_checked_against_content_length(http: httpx.Client) -> None:
    assert put_raw(http, padded_upsert(MAX_BODY)).status_code == 200
    too_big = put_raw(http, padded_upsert(MAX_BODY + 1))
    assert refused(too_big, 413, "RequestTooLarge")
    assert too_big.json()["request_id"] == too_big.headers["x-request-id"]
    assert count(http) == 2


def test_body_size_is_checked_while_a_chunked_body_streams(http: httpx.Client) -> None:
    def chunks(body: bytes) -> Iterator[bytes]:  # no Content-Length: chunked encoding
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    assert put_raw(http, chunks(padded_upsert(MAX_BODY))).status_code == 200
    too_big = put_raw(http, chunks(padded_upsert(MAX_BODY + 1)))
    assert refused(too_big, 413, "RequestTooLarge")
    assert count(http) == 2


def test_points_per_upsert(http: httpx.Client) -> None:
    assert http.put("/collections/items/points", json={"points": points(5)}).status_code == 200
    six = http.put("/collections/items/points", json={"points": points(6)})
    assert refused(six, 413, "RequestTooLarge")
    assert count(http) == 6  # the first point and the five; none of the six


def test_queries_per_batch(http: httpx.Client) -> None:
    def batch(n: int) -> httpx.Response:
        searches = [{"vector": [0, 0], "k": 1}] * n
        return http.post("/collections/items/search/batch", json={"searches": searches})

    assert len(batch(3).json()["results"]) == 3
    assert refused(batch(4), 413, "RequestTooLarge")


def test_k(http: httpx.Client) -> None:
    search = "/collections/items/search"
    assert http.post(search, json={"vector": [0, 0], "k": 7}).status_code == 200
    assert refused(http.post(search, json={"vector": [0, 0], "k": 8}), 422, "InvalidK")
    recommend = http.post("/collections/items/recommend", json={"positive": [[0, 0]], "k": 8})
    assert refused(recommend, 422, "InvalidK")


def test_dimension_of_a_new_collection(http: httpx.Client) -> None:
    assert http.put("/collections/widest", json={"dim": 8}).status_code == 201
    too_wide = http.put("/collections/too-wide", json={"dim": 9})
    assert refused(too_wide, 422, "InvalidInput")
    assert http.get("/collections/too-wide").status_code == 404


@pytest.mark.parametrize(
    "at_limit",
    [
        {"a.b.c": 1},
        {"$or": [{"$and": [{"a": 1}]}]},
        {"$not": {"a": {"$not": {"$gt": 1}}}},
        {"deep.er": {"$in": [1, 2]}, "$or": [{"x": 1}, {"y.z": 2}]},
    ],
)
def test_filter_depth_at_the_limit_is_served(http: httpx.Client, at_limit: object) -> None:
    body = {"vector": [0, 0], "k": 1, "filter": at_limit}
    search = http.post("/collections/items/search", json=body)
    assert search.status_code == 200


@pytest.mark.parametrize(
    "past_limit",
    [
        {"a.b.c.d": 1},
        {"$or": [{"$and": [{"$not": {"a": 1}}]}]},
        {"$not": {"a.b": {"$not": {"$gt": 1}}}},
        {"ok": 1, "$or": [{"x": 1}, {"$and": [{"y.z": 2}]}]},
    ],
)
def test_filter_depth_past_the_limit_is_refused_everywhere(
    http: httpx.Client, past_limit: object
) -> None:
    requests = {
        "/collections/items/search": {"vector": [0, 0], "filter": past_limit},
        "/collections/items/search/batch": {"searches": [{"vector": [0, 0], "filter": past_limit}]},
        "/collections/items/recommend": {"positive": [[0, 0]], "filter": past_limit},
        "/collections/items/points/scroll": {"filter": past_limit},
        "/collections/items/points/delete": {"filter": past_limit},
    }
    for path, body in requests.items():
        assert refused(http.post(path, json=body), 422, "InvalidFilter"), path
    assert count(http) == 1


def test_payload_size_per_point(http: httpx.Client) -> None:
    def payload(size: int) -> dict[str, str]:
        base = len(orjson.dumps({"p": ""}))
        return {"p": "x" * (size - base)}

    assert len(orjson.dumps(payload(100))) == 100
    at_limit = [{"id": "at", "vector": [1, 1], "payload": payload(100)}]
    assert http.put("/collections/items/points", json={"points": at_limit}).status_code == 200
    past = [
        {"id": "ok", "vector": [1, 1]},
        {"id": "past", "vector": [1, 1], "payload": payload(101)},
    ]
    assert refused(
        http.put("/collections/items/points", json={"points": past}), 413, "RequestTooLarge"
    )
    assert count(http) == 2
