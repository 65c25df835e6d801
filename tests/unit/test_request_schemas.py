"""The OpenAPI document says the request rules the server checks beyond field types, so a
client generated from it does not send requests the server refuses: each body here is
refused by the document and by the server (with the error the server has always given),
or taken by both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from indexer.embedders import EmbedderConfig
from indexer.query.rerank import RerankerConfig
from service.app import create_app
from service.settings import Settings

EMBEDDERS = [
    EmbedderConfig(name="words", kind="sentence-transformers"),
    EmbedderConfig(name="pictures", kind="efficientnet-lite0"),
]
RERANKERS = [RerankerConfig(name="judge", source="cross-encoder-folder")]
VECTOR = [1.0, 0.0]
DENSE = {"dense": {"vector": VECTOR}}
LONG = "x" * 100_001  # past the engine's bound on query texts


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A server with an embedder of texts, one of images and a reranker (never loaded
    here), and a collection with full-text fields."""
    data = tmp_path_factory.mktemp("schemas")
    settings = Settings(data_dir=data, device="cpu", embedders=EMBEDDERS, rerankers=RERANKERS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        created = client.put(
            "/collections/items", json={"dim": 2, "full_text": {"fields": ["title"]}}
        )
        assert created.status_code == 201, created.text
        points = [{"id": 1, "vector": VECTOR, "payload": {"title": "a red shoe"}}]
        assert client.put("/collections/items/points", json={"points": points}).is_success
        yield client


def document_allows(client: TestClient, component: str, body: Any) -> bool:
    document = client.app.openapi()  # type: ignore[attr-defined]
    schema = {**document, "$ref": f"#/components/schemas/{component}"}
    return jsonschema.Draft202012Validator(schema).is_valid(body)


# (component, method, path, body, the server's error); path None: not sent (a model
# would load).
REFUSED: dict[str, tuple[str, str, str | None, Any, str]] = {
    "hybrid without a text": (
        "Search",
        "POST",
        "/collections/items/search",
        {"vector": VECTOR, "hybrid": {}},
        "InvalidQuery",
    ),
    "hybrid with a text too long": (
        "Search",
        "POST",
        "/collections/items/search",
        {"vector": VECTOR, "hybrid": {"text": LONG}},
        "InvalidQuery",
    ),
    "hybrid on a search text too long": (
        "Search",
        "POST",
        "/collections/items/search",
        {"text": LONG, "hybrid": {}},
        "InvalidQuery",
    ),
    "hybrid in a batch": (
        "SearchBatch",
        "POST",
        "/collections/items/search/batch",
        {"searches": [{"vector": VECTOR, "hybrid": {"text": "shoe"}}]},
        "InvalidQuery",
    ),
    "a partial search in a batch": (
        "SearchBatch",
        "POST",
        "/collections/items/search/batch",
        {"searches": [{"vector": VECTOR, "partial": True}]},
        "InvalidQuery",
    ),
    "a stage both dense and lexical": (
        "QueryBody",
        "POST",
        "/collections/items/query",
        {"prefetch": [{"dense": {"vector": VECTOR}, "lexical": {"text": "shoe"}}]},
        "InvalidRequest",
    ),
    "a stage neither": (
        "QueryBody",
        "POST",
        "/collections/items/query",
        {"prefetch": [{"limit": 5}]},
        "InvalidRequest",
    ),
    "a dense stage by two queries": (
        "QueryBody",
        "POST",
        "/collections/items/query",
        {"prefetch": [{"dense": {"vector": VECTOR, "point_id": 1}}]},
        "InvalidRequest",
    ),
    "a point id past int64": (
        "QueryBody",
        "POST",
        "/collections/items/query",
        {"prefetch": [{"dense": {"point_id": 2**63}}]},
        "InvalidId",
    ),
    "two reranks": (
        "QueryBody",
        "POST",
        "/collections/items/query",
        {"prefetch": [DENSE], "rerank": {"mmr": {}, "cross_encoder": {"model": "judge"}}},
        "InvalidRequest",
    ),
    "a cross-encoder without a text": (
        "QueryBody",
        "POST",
        "/collections/items/query",
        {"prefetch": [DENSE], "rerank": {"cross_encoder": {"model": "judge"}}},
        "InvalidQuery",
    ),
    "a cross-encoder not configured": (
        "QueryBody",
        "POST",
        "/collections/items/query",
        {"prefetch": [DENSE], "rerank": {"cross_encoder": {"model": "other", "query": "q"}}},
        "InvalidQuery",
    ),
    "a limit past max_k": (
        "QueryBody",
        "POST",
        "/collections/items/query",
        {"prefetch": [DENSE], "limit": 1_001},
        "InvalidK",
    ),
    "thumbnails without an embedder": (
        "CreateCollection",
        "PUT",
        "/collections/thumbs",
        {"dim": 2, "thumbnails": True},
        "InvalidInput",
    ),
    "thumbnails with an embedder of texts": (
        "CreateCollection",
        "PUT",
        None,
        {"embedder": "words", "thumbnails": True},
        "InvalidInput",
    ),
    "a full-text path starting with $": (
        "FullTextDeclaration",
        "PUT",
        "/collections/items/full_text",
        {"fields": ["$title"]},
        "InvalidFullText",
    ),
    "an empty full-text path segment": (
        "FullTextDeclaration",
        "PUT",
        "/collections/items/full_text",
        {"fields": [{"path": "brand..name"}]},
        "InvalidFullText",
    ),
    "a full-text path with a quote": (
        "FullTextDeclaration",
        "PUT",
        "/collections/items/full_text",
        {"fields": ['ti"tle']},
        "InvalidFullText",
    ),
    "a full-text weight of 0": (
        "FullTextDeclaration",
        "PUT",
        "/collections/items/full_text",
        {"fields": [{"path": "title", "weight": 0}]},
        "InvalidFullText",
    ),
    "a full-text field twice": (
        "FullTextDeclaration",
        "PUT",
        "/collections/items/full_text",
        {"fields": ["title", "title"]},
        "InvalidFullText",
    ),
    "17 full-text fields": (
        "FullTextDeclaration",
        "PUT",
        "/collections/items/full_text",
        {"fields": [f"f{i}" for i in range(17)]},
        "InvalidFullText",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_document_refuses_what_the_server_refuses(client: TestClient, case: str) -> None:
    component, method, path, body, error = REFUSED[case]
    assert not document_allows(client, component, body)
    if path is not None:
        answer = client.request(method, path, json=body)
        assert (answer.status_code, answer.json()["error"]) == (422, error), answer.text


ALLOWED: dict[str, tuple[str, str, str | None, Any]] = {
    "hybrid with its own text": (
        "Search",
        "POST",
        "/collections/items/search",
        {"vector": VECTOR, "hybrid": {"text": "shoe"}},
    ),
    "a plain search by a long text": ("Search", "POST", None, {"text": LONG}),
    "a partial search (one engine answers in full)": (
        "Search",
        "POST",
        "/collections/items/search",
        {"vector": VECTOR, "partial": True},
    ),
    "a batch that does not ask for partial answers": (
        "SearchBatch",
        "POST",
        "/collections/items/search/batch",
        {"searches": [{"vector": VECTOR, "partial": False}]},
    ),
    "stages of both kinds": (
        "QueryBody",
        "POST",
        "/collections/items/query",
        {"prefetch": [DENSE, {"lexical": {"text": "shoe"}}], "rerank": {"mmr": {}}},
    ),
    "a cross-encoder with a stage's text": (
        "QueryBody",
        "POST",
        None,
        {
            "prefetch": [{"lexical": {"text": "shoe"}}],
            "rerank": {"cross_encoder": {"model": "judge"}},
        },
    ),
    "thumbnails with an embedder of images": (
        "CreateCollection",
        "PUT",
        None,
        {"embedder": "pictures", "thumbnails": True},
    ),
    "weighted dotted full-text paths": (
        "FullTextDeclaration",
        "PUT",
        "/collections/items/full_text",
        {"fields": ["title", {"path": "brand.name", "weight": 2.5}], "tokenizer": "porter"},
    ),
}


@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_the_document_allows_what_the_server_takes(client: TestClient, case: str) -> None:
    component, method, path, body = ALLOWED[case]
    assert document_allows(client, component, body)
    if path is not None:
        answer = client.request(method, path, json=body)
        assert answer.is_success, answer.text


def test_without_rerankers_the_document_allows_only_mmr(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, device="cpu", embedders=[]))
    document = app.openapi()
    schema = {**document, "$ref": "#/components/schemas/QueryBody"}
    validator = jsonschema.Draft202012Validator(schema)
    cross_encoder = {"cross_encoder": {"model": "judge", "query": "q"}}
    assert not validator.is_valid({"prefetch": [DENSE], "rerank": cross_encoder})
    assert validator.is_valid({"prefetch": [DENSE], "rerank": {"mmr": {"lambda": 0.5}}})
    create = {**document, "$ref": "#/components/schemas/CreateCollection"}
    assert not jsonschema.Draft202012Validator(create).is_valid({"dim": 2, "thumbnails": True})
