"""Request bodies, over real HTTP: JSON that the engine could not store (a lone UTF-16
surrogate, NaN, Infinity, nesting deeper than the store writes) is a clear 422 anywhere
in any body, never a 500, and nothing is written; a body not sent as JSON is a 415 that
says so."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support.collections import client_on_fresh
from tests.support.server import Server

ITEMS = "/collections/items"


@pytest.fixture
def http(plain_server: Server) -> Iterator[httpx.Client]:
    """A client on a fresh ``items`` collection (dim 4) holding the point ``"p"``."""
    point = {"id": "p", "vector": [1, 0, 0, 0], "payload": {"a": "x"}}
    yield from client_on_fresh(plain_server.url, ITEMS, {"dim": 4}, [point])


def send(http: httpx.Client, method: str, path: str, body: bytes) -> httpx.Response:
    return http.request(
        method, ITEMS + path, content=body, headers={"content-type": "application/json"}
    )


def stored_ids(http: httpx.Client) -> list[object]:
    page = http.post(f"{ITEMS}/points/scroll", json={}).json()
    return [p["id"] for p in page["points"]]


LONE = "\ud800"
# The standard library writes a lone surrogate as the escape "\ud800", which it reads back.
SURROGATE_BODIES = {
    "upsert id": ("PUT", "/points", {"points": [{"id": LONE, "vector": [1, 0, 0, 0]}]}),
    "payload value": (
        "PUT",
        "/points",
        {"points": [{"id": "q", "vector": [1, 0, 0, 0], "payload": {"a": "\udc00"}}]},
    ),
    "payload key": (
        "PUT",
        "/points",
        {"points": [{"id": "q", "vector": [1, 0, 0, 0], "payload": {LONE: 1}}]},
    ),
    "get ids": ("POST", "/points/get", {"ids": [LONE]}),
    "delete ids": ("POST", "/points/delete", {"ids": [LONE]}),
    "delete filter": ("POST", "/points/delete", {"filter": {"a": {"$in": [LONE]}}}),
    "scroll cursor": ("POST", "/points/scroll", {"cursor": LONE}),
    "search id": ("POST", "/search", {"id": LONE}),
    "search filter value": ("POST", "/search", {"vector": [1, 0, 0, 0], "filter": {"a": LONE}}),
    "search filter key": ("POST", "/search", {"vector": [1, 0, 0, 0], "filter": {LONE: 1}}),
    "recommend": ("POST", "/recommend", {"positive": [LONE]}),
}


@pytest.mark.parametrize("case", list(SURROGATE_BODIES))
def test_a_lone_surrogate_anywhere_in_a_body_is_an_invalid_request(
    http: httpx.Client, case: str
) -> None:
    method, path, body = SURROGATE_BODIES[case]
    response = send(http, method, path, json.dumps(body).encode())
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "InvalidRequest"
    assert "not valid JSON" in error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert stored_ids(http) == ["p"]


def test_a_surrogate_encoded_as_utf8_bytes_is_an_invalid_request(http: httpx.Client) -> None:
    body = '{"points": [{"id": "\ud800", "vector": [1, 0, 0, 0]}]}'.encode("utf-8", "surrogatepass")
    response = send(http, "PUT", "/points", body)
    assert (response.status_code, response.json()["error"]) == (422, "InvalidRequest")
    assert stored_ids(http) == ["p"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused_not_stored_as_null(
    http: httpx.Client, literal: str
) -> None:
    upsert = '{"points": [{"id": "n", "vector": [1, 0, 0, 0], "payload": {"n": %s}}]}'
    response = send(http, "PUT", "/points", (upsert % literal).encode())
    assert (response.status_code, response.json()["error"]) == (422, "InvalidRequest")
    search = send(http, "POST", "/search", b'{"vector": [1, 0, 0, %s]}' % literal.encode())
    assert (search.status_code, search.json()["error"]) == (422, "InvalidRequest")
    assert stored_ids(http) == ["p"]


def test_malformed_json_says_where_it_breaks(http: httpx.Client) -> None:
    response = send(http, "PUT", "/points", b'{"points": [}')
    assert (response.status_code, response.json()["error"]) == (422, "InvalidRequest")
    message = response.json()["message"]
    assert message.startswith("the body is not valid JSON: ")
    assert "at character 12" in message


def test_a_payload_nested_deeper_than_the_store_writes_is_an_invalid_payload(
    http: httpx.Client,
) -> None:
    deep: object = 1
    for _ in range(300):
        deep = {"a": deep}
    point = {"id": "deep", "vector": [1, 0, 0, 0], "payload": deep}
    response = send(http, "PUT", "/points", json.dumps({"points": [point]}).encode())
    assert (response.status_code, response.json()["error"]) == (422, "InvalidPayload")
    assert "point 0" in response.json()["message"]
    assert stored_ids(http) == ["p"]


def test_integers_beyond_64_bits_are_read_as_floats(http: httpx.Client) -> None:
    # As JavaScript reads them; an id that large is refused (ids are 64-bit integers).
    big = 2**70
    point = {"id": "big", "vector": [1, 0, 0, 0], "payload": {"n": big}}
    assert http.put(f"{ITEMS}/points", json={"points": [point]}).status_code == 200
    (got,) = http.post(f"{ITEMS}/points/get", json={"ids": ["big"]}).json()["points"]
    assert got["payload"] == {"n": float(big)}
    assert isinstance(got["payload"]["n"], float)
    by_id = http.put(f"{ITEMS}/points", json={"points": [{"id": big, "vector": [1, 0, 0, 0]}]})
    assert (by_id.status_code, by_id.json()["error"]) == (422, "InvalidRequest")
    search = http.post(f"{ITEMS}/search", json={"id": big})
    assert (search.status_code, search.json()["error"]) == (422, "InvalidRequest")


FORM = "application/x-www-form-urlencoded"  # what `curl -d` sends unless told otherwise
JSON_BODIES = {
    "upsert": ("PUT", "/points", {"points": [{"id": "q", "vector": [0, 1, 0, 0]}]}),
    "get": ("POST", "/points/get", {"ids": ["p"]}),
    "delete": ("POST", "/points/delete", {"ids": ["p"]}),
    "search": ("POST", "/search", {"vector": [1, 0, 0, 0]}),
    "recommend": ("POST", "/recommend", {"positive": ["p"]}),
}


@pytest.mark.parametrize("content_type", [FORM, "text/plain", "application/xml", None])
@pytest.mark.parametrize("case", list(JSON_BODIES))
def test_a_json_body_sent_as_another_type_is_unsupported_media_type_and_not_read(
    http: httpx.Client, case: str, content_type: str | None
) -> None:
    # Not parsed anyway: browsers send such bodies across sites without a CORS preflight.
    method, path, body = JSON_BODIES[case]
    headers = {} if content_type is None else {"content-type": content_type}
    response = http.request(
        method, ITEMS + path, content=json.dumps(body).encode(), headers=headers
    )
    assert response.status_code == 415, response.text
    error = response.json()
    assert error["error"] == "UnsupportedMediaType"
    assert "Content-Type: application/json" in error["message"]
    assert (content_type or "without one") in error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert stored_ids(http) == ["p"]


def test_only_a_body_not_sent_as_json_is_refused(http: httpx.Client) -> None:
    body = json.dumps({"points": [{"id": "q", "vector": [0, 1, 0, 0]}]}).encode()
    form = http.put(f"{ITEMS}/points", content=body, headers={"content-type": FORM})
    assert form.status_code == 415
    for json_type in ("application/json", "application/json; charset=utf-8", "application/x+json"):
        upsert = http.put(f"{ITEMS}/points", content=body, headers={"content-type": json_type})
        assert upsert.json() == {"upserted": 1}, json_type
    # A form type on a request without a body changes nothing.
    assert http.get(ITEMS, headers={"content-type": FORM}).json()["count"] == 2
    empty = http.post(f"{ITEMS}/points/get", headers={"content-type": FORM})
    assert (empty.status_code, empty.json()["error"]) == (422, "InvalidRequest")
    assert stored_ids(http) == ["p", "q"]


def test_the_openapi_document_names_the_415_of_json_bodies(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    upsert = paths["/collections/{name}/points"]["put"]["responses"]
    assert "UnsupportedMediaType" in upsert["415"]["description"]
    assert "415" not in paths["/collections/{name}"]["get"]["responses"]  # no body
