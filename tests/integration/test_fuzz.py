"""Property-based fuzzing of the whole HTTP API from its own OpenAPI document.

The document comes from ``create_app`` with the same settings as the server under test
(``test_the_fuzzed_document_is_the_one_served`` checks that), and every generated
request goes over HTTP to the real service under uvicorn. (Schemathesis's fixture-based
loader, which could fetch it from the server, does not run under pytest 9.2: it sets
``node._nodeid``, which pytest no longer has.)
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from fastapi.routing import APIRoute, iter_route_contexts
from hypothesis import HealthCheck, settings
from pydantic import SecretStr

from service.app import create_app
from service.settings import Settings
from tests.support.collections import recreate
from tests.support.server import NewServer, Server

KEY = "fuzz-read-write-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}

schemathesis.serializer.alias("application/x-tar", "application/octet-stream")  # snapshots

# Schemathesis's rejections of invalid data, and 413 (RequestTooLarge: over a limit).
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
REJECTIONS += ["5xx"]
# No embedders: a collection the fuzzer creates with one would load a model, for minutes.
APP = create_app(Settings(api_keys=[SecretStr(KEY)], embedders=[]))
DOCUMENT = APP.openapi()
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": 25},
            # Half the requests name the seeded collection, so they reach the engine.
            "dictionaries": {"collections": {"values": ["items"]}},
            "parameters": {"path.name": {"dictionary": "collections", "probability": 0.5}},
            # Too many items for the server's limits is a 413 RequestTooLarge: a rejection.
            "checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}},
        }
    ),
)


@pytest.fixture(scope="module")
def fuzz_server(new_server: NewServer) -> Iterator[Server]:
    with new_server({"VECSERVE_API_KEYS": KEY, "VECSERVE_EMBEDDERS": "[]"}) as server:
        yield server


@pytest.fixture
def items(fuzz_server: Server) -> None:
    """The collection half the requests name, as new before each operation's examples
    (those of the operation before may have dropped or replaced it)."""
    with httpx.Client(base_url=fuzz_server.url, headers=AUTH) as http:
        points = [{"id": i, "vector": [i, 1, 0, 0], "payload": {"n": i}} for i in range(20)]
        recreate(http, "/collections/items", {"dim": 4, "metric": "l2"}, points)


def test_every_operation_has_an_explicit_stable_operation_id() -> None:
    """Ids are the SDK's and the docs' names for operations: set by hand on each route,
    never FastAPI's generated ones (which change when a path or function does). The HEAD
    twins of GET routes are not operations: they stay out of the document."""
    routes = [
        c
        for c in iter_route_contexts(APP.routes)
        if isinstance(c.original_route, APIRoute) and c.include_in_schema
    ]
    ids = [c.operation_id for c in routes]
    assert all(ids), [c.path for c in routes if not c.operation_id]
    assert len(set(ids)) == len(ids)
    documented = [op["operationId"] for item in DOCUMENT["paths"].values() for op in item.values()]
    assert sorted(documented) == sorted(ids)


def test_the_fuzzed_document_is_the_one_served(fuzz_server: Server) -> None:
    served = httpx.get(f"{fuzz_server.url}/openapi.json").json()
    assert served == DOCUMENT


@schema.parametrize()
# `items` is reset once per operation on purpose, not once per example.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_operation_answers_by_its_schema_and_never_with_5xx(
    case: schemathesis.Case, fuzz_server: Server, items: None
) -> None:
    # Every other check stays on. This one expects any schema-valid request to succeed,
    # but some are refused on meaning the schema cannot express, with a documented 422:
    # an invalid collection name, a vector of the wrong dimension, a malformed filter.
    case.call_and_validate(
        base_url=fuzz_server.url,
        headers=AUTH,
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )


# The positive phase: requests the document allows, which the server must take. A 4xx
# there is a schema looser than the server. Only refusals that depend on what JSON Schema
# cannot see are expected: the collection's dimension and embedder (like its existence,
# a 404), whether a snapshot's bytes match their checksum and form a snapshot, how an
# index spec's pq_m fits the dimension, ids repeated across the points of an upsert, and
# scroll cursors, which only the server hands out; two query parameters that must agree,
# and a query's offset plus limit (below). The rest (hybrid searches and query stages,
# full-text paths, thumbnails, rerankers) the document says, from this server's settings.
positive = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": 30, "mode": "positive"},
            "dictionaries": {"collections": {"values": ["items"]}},
            "parameters": {"path.name": {"dictionary": "collections", "probability": 0.5}},
        }
    ),
)
DEPENDS_ON_STATE = {
    "DimensionMismatch",
    "InvalidVector",  # vectors of several lengths: not all can match the dimension
    "InvalidEmbedderInput",  # a text or image for a collection without an embedder
    "ChecksumMismatch",
    "InvalidSnapshot",
    "InvalidIndexSpec",
    "DuplicateIds",
}


@positive.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)
def test_every_request_the_schema_allows_is_accepted(
    case: schemathesis.Case, fuzz_server: Server, items: None
) -> None:
    response = case.call(base_url=fuzz_server.url, headers=AUTH)
    if response.status_code in (400, 413, 415, 422):
        error = response.json()["error"]
        cursor = isinstance(case.body, dict) and case.body.get("cursor") is not None
        # GET point's deprecated with_vector query parameter must agree with with_vectors:
        # OpenAPI cannot say that of two query parameters.
        query = case.query or {}
        names_differ = {"with_vector", "with_vectors"} <= set(query) and len(
            {str(query["with_vector"]).lower(), str(query["with_vectors"]).lower()}
        ) == 2
        # JSON Schema bounds a query's offset and limit each, not their sum (max_k).
        past_k = case.operation.label.endswith("/query") and error == "InvalidK"
        # uniqueItems compares whole items, not a full-text field's path in its two forms
        # ("title" and {"path": "title"}) or with two weights.
        twice = error == "InvalidFullText" and "each full-text field is declared once" in (
            response.text
        )
        expected = (
            past_k
            or twice
            or error in DEPENDS_ON_STATE
            or (cursor and error == "InvalidInput")
            or (names_differ and error == "InvalidRequest")
        )
        assert expected, f"{case.operation.label} refused a request its schema allows: " + (
            f"{response.status_code} {response.text}\nbody: {str(case.body)[:500]}"
        )
