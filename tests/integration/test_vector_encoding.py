"""Vectors in responses, over real HTTP: JSON float arrays by default, base64 of
little-endian float32 (``vector_b64``) on every route that returns vectors when asked with
``vector_encoding=b64``; recommend examples may be sent in that form too."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.collections import client_on_fresh
from tests.support.server import Server

ITEMS = "/collections/items"
rng = np.random.default_rng(17)
DATA = rng.standard_normal((6, 4)).astype(np.float32)


def b64(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decoded(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4")


@pytest.fixture
def http(plain_server: Server) -> Iterator[httpx.Client]:
    """A client on a fresh ``items`` collection (dim 4, l2) holding points 0..5 (DATA)."""
    points = [{"id": i, "vector_b64": b64(v)} for i, v in enumerate(DATA)]
    config = {"dim": 4, "metric": "l2", "index": "flat"}
    yield from client_on_fresh(plain_server.url, ITEMS, config, points)


# Each route that returns vectors: a request for point 2's vector, given the options, and
# where the point (or hit) is in the answer.
Ask = Callable[[httpx.Client, dict[str, Any]], dict[str, Any]]
ROUTES: dict[str, Ask] = {
    "get points": lambda http, options: http.post(
        f"{ITEMS}/points/get", json={"ids": [2], **options}
    ).json()["points"][0],
    "get one point": lambda http, options: http.get(f"{ITEMS}/points/2", params=options).json(),
    "scroll": lambda http, options: next(
        p
        for p in http.post(f"{ITEMS}/points/scroll", json={"limit": 10, **options}).json()["points"]
        if p["id"] == 2
    ),
    "search": lambda http, options: http.post(
        f"{ITEMS}/search", json={"vector_b64": b64(DATA[2]), "k": 1, **options}
    ).json()["hits"][0],
    "search batch": lambda http, options: http.post(
        f"{ITEMS}/search/batch",
        json={"searches": [{"id": 0, "k": 1}, {"vector": DATA[2].tolist(), "k": 1, **options}]},
    ).json()["results"][1]["hits"][0],
    "recommend": lambda http, options: http.post(
        f"{ITEMS}/recommend", json={"positive": [DATA[2].tolist()], "k": 1, **options}
    ).json()["hits"][0],
}


def query_options(route: str, options: dict[str, Any]) -> dict[str, Any]:
    """Options as a GET's query parameters (``true``, not ``True``)."""
    if route != "get one point":
        return options
    return {k: str(v).lower() if isinstance(v, bool) else v for k, v in options.items()}


@pytest.mark.parametrize("route", list(ROUTES))
def test_every_route_returns_vectors_as_base64_float32_when_asked(
    http: httpx.Client, route: str
) -> None:
    ask = ROUTES[route]
    options = {"with_vector": True, "vector_encoding": "b64"}
    compact = ask(http, query_options(route, options))
    assert compact["id"] == 2
    assert "vector" not in compact
    np.testing.assert_array_equal(decoded(compact["vector_b64"]), DATA[2])  # exact
    plain = ask(http, query_options(route, {"with_vector": True}))  # the default: floats
    assert "vector_b64" not in plain
    np.testing.assert_array_equal(np.array(plain["vector"], dtype=np.float32), DATA[2])
    floats = ask(http, query_options(route, {"with_vector": True, "vector_encoding": "float"}))
    assert floats == plain


@pytest.mark.parametrize("route", list(ROUTES))
def test_every_route_asks_with_vectors_and_still_reads_the_deprecated_with_vector(
    http: httpx.Client, route: str
) -> None:
    ask = ROUTES[route]
    new = ask(http, query_options(route, {"with_vectors": True}))
    np.testing.assert_array_equal(np.array(new["vector"], dtype=np.float32), DATA[2])
    assert ask(http, query_options(route, {"with_vector": True})) == new
    assert ask(http, query_options(route, {"with_vectors": True, "with_vector": True})) == new
    without = ask(http, query_options(route, {"with_vectors": False, "with_vector": False}))
    assert "vector" not in without


def test_with_vectors_and_a_different_with_vector_are_an_invalid_request(
    http: httpx.Client,
) -> None:
    differ = {"with_vectors": True, "with_vector": False}
    answers = [
        http.post(f"{ITEMS}/points/get", json={"ids": [2], **differ}),
        http.get(f"{ITEMS}/points/2", params={"with_vectors": "false", "with_vector": "true"}),
        http.post(f"{ITEMS}/points/scroll", json=differ),
        http.post(f"{ITEMS}/search", json={"id": 2, **differ}),
        http.post(f"{ITEMS}/search/batch", json={"searches": [{"id": 2, **differ}]}),
        http.post(f"{ITEMS}/recommend", json={"positive": [2], **differ}),
    ]
    for answer in answers:
        assert (answer.status_code, answer.json()["error"]) == (422, "InvalidRequest")
        assert (
            "with_vector (the deprecated name) and with_vectors differ"
            in (answer.json()["message"])
        )


def test_the_openapi_document_marks_with_vector_deprecated(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for model in ("GetPoints", "Scroll", "Search", "Recommend"):
        properties = schemas[model]["properties"]
        assert properties["with_vectors"]["default"] is False
        assert properties["with_vector"]["deprecated"] is True
        assert "with_vectors" in properties["with_vector"]["description"]
    get_point = document["paths"]["/collections/{name}/points/{point_id}"]["get"]
    parameters = {p["name"]: p for p in get_point["parameters"]}
    assert parameters["with_vector"]["deprecated"] is True
    assert not parameters["with_vectors"].get("deprecated")


def test_vector_encoding_without_with_vector_returns_no_vector(http: httpx.Client) -> None:
    for route, ask in ROUTES.items():
        answer = ask(http, {"vector_encoding": "b64"})
        assert answer["id"] == 2, route
        assert "vector" not in answer
        assert "vector_b64" not in answer


def test_an_unknown_vector_encoding_is_an_invalid_request(http: httpx.Client) -> None:
    body = http.post(f"{ITEMS}/points/get", json={"ids": [2], "vector_encoding": "base85"})
    assert (body.status_code, body.json()["error"]) == (422, "InvalidRequest")
    assert "'float' or 'b64'" in body.json()["message"]
    query = http.get(f"{ITEMS}/points/2", params={"vector_encoding": "hex"})
    assert (query.status_code, query.json()["error"]) == (422, "InvalidRequest")


def test_the_openapi_document_describes_vector_encoding(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for model in ("GetPoints", "Scroll", "Search", "Recommend"):
        option = schemas[model]["properties"]["vector_encoding"]
        assert (option["enum"], option["default"]) == (["float", "b64"], "float")
        assert "vector_b64" in option["description"]
    for model in ("PointOut", "HitOut"):
        assert "little-endian float32" in schemas[model]["properties"]["vector_b64"]["description"]
    get_point = document["paths"]["/collections/{name}/points/{point_id}"]["get"]
    (parameter,) = [p for p in get_point["parameters"] if p["name"] == "vector_encoding"]
    assert "vector_b64" in parameter["description"]


def recommend(http: httpx.Client, positive: list[object], **options: object) -> httpx.Response:
    body = {"positive": positive, "k": 3, "with_payload": False, **options}
    return http.post(f"{ITEMS}/recommend", json=body)


@pytest.mark.parametrize("strategy", ["average", "best_score"])
def test_recommend_takes_base64_vector_examples_beside_ids_and_arrays(
    http: httpx.Client, strategy: str
) -> None:
    as_arrays = recommend(http, [DATA[1].tolist(), 4], negative=[DATA[0].tolist()])
    as_b64 = recommend(
        http, [{"vector_b64": b64(DATA[1])}, 4], negative=[{"vector_b64": b64(DATA[0])}]
    )
    assert as_b64.status_code == 200, as_b64.text
    assert as_b64.json() == as_arrays.json()
    assert 4 not in [h["id"] for h in as_b64.json()["hits"]]  # an id example is left out
    alone = recommend(http, [{"vector_b64": b64(DATA[5])}], strategy=strategy)
    assert alone.json()["hits"][0]["id"] == 5


def test_a_bad_base64_recommend_example_is_refused_as_an_upsert_would_be(
    http: httpx.Client,
) -> None:
    upsert = http.put(f"{ITEMS}/points", json={"points": [{"id": 9, "vector_b64": "not b64!"}]})
    bad = recommend(http, [{"vector_b64": "not b64!"}])
    assert (bad.status_code, bad.json()["error"]) == (422, upsert.json()["error"])
    assert bad.json()["error"] == "InvalidVector"
    assert "base64" in bad.json()["message"]
    ragged = recommend(http, [1], negative=[{"vector_b64": base64.b64encode(b"abcdef").decode()}])
    assert (ragged.status_code, ragged.json()["error"]) == (422, "InvalidVector")


def test_a_base64_recommend_example_of_another_dimension_is_a_dimension_mismatch(
    http: httpx.Client,
) -> None:
    for vector in (np.ones(3), np.ones(5), np.ones(0)):
        wrong = recommend(http, [{"vector_b64": b64(vector)}])
        assert (wrong.status_code, wrong.json()["error"]) == (422, "DimensionMismatch")
    not_finite = recommend(http, [{"vector_b64": b64(np.array([1, 0, np.nan, 0]))}])
    assert (not_finite.status_code, not_finite.json()["error"]) == (422, "InvalidVector")
    both = recommend(http, [{"vector_b64": b64(DATA[0]), "text": "x"}])
    assert (both.status_code, both.json()["error"]) == (422, "InvalidRequest")
