"""Searches, batch searches and upserts are served by :mod:`service.hot_routes`, not by
FastAPI's router, and must answer exactly as FastAPI would. Each request here goes to the
same app twice: through the hot path, and through FastAPI's (which any dependency override
forces); status, body and headers must agree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service import hot_routes
from service.app import create_app
from service.hot_routes import HotRoutes
from service.settings import Settings

SEARCH = "/collections/c/search"
BATCH = "/collections/c/search/batch"
POINTS = "/collections/c/points"
JSON = {"content-type": "application/json"}

CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", SEARCH, {"json": {"vector": [1, 0, 0, 0], "k": 2}}),
    ("POST", SEARCH, {"json": {"vector": [1, 0, 0, 0], "k": 2, "with_vectors": True}}),
    ("POST", SEARCH, {"json": {"id": 1, "k": 2}}),
    ("POST", SEARCH, {"content": b'{"vector": [1, 0,', "headers": JSON}),
    ("POST", SEARCH, {"content": b"null", "headers": JSON}),
    ("POST", SEARCH, {"content": b"[]", "headers": JSON}),
    ("POST", SEARCH, {"content": b"", "headers": JSON}),
    ("POST", SEARCH, {"content": b'{"vector": [1]}'}),  # no content type
    ("POST", SEARCH, {"content": b"vector=1", "headers": {"content-type": "text/plain"}}),
    ("POST", SEARCH, {"content": b'{"vector": [NaN, 0, 0, 0]}', "headers": JSON}),
    ("POST", SEARCH, {"json": {"vector": [1, 0, 0, 0], "k": 0}}),
    ("POST", SEARCH, {"json": {"vector": [1, 0, 0, 0], "k": 100_000}}),
    ("POST", SEARCH, {"json": {"vector": [1, 0, 0], "k": 2}}),
    ("POST", SEARCH, {"json": {"vector": [1, 0, 0, 0], "text": "two inputs"}}),
    ("POST", SEARCH, {"json": {"vector": [1, 0, 0, 0], "surprise": 1}}),
    ("POST", SEARCH, {"json": {"vector": [1, 0, 0, 0], "filter": {"n": {"$gt": 1}}}}),
    ("POST", SEARCH, {"json": {"vector": [1, 0, 0, 0], "filter": {"n": {"$bad": 1}}}}),
    ("POST", SEARCH, {"json": {"text": "no embedder here"}}),
    ("POST", "/collections/missing/search", {"json": {"vector": [1, 0, 0, 0]}}),
    ("POST", "/collections/missing/search", {"content": b"{", "headers": JSON}),
    ("GET", SEARCH, {}),
    ("POST", BATCH, {"json": {"searches": [{"vector": [0, 1, 0, 0]}, {"id": 2, "k": 1}]}}),
    ("POST", BATCH, {"json": {"searches": []}}),
    ("POST", BATCH, {"json": {"searches": [{"vector": [0, 1, 0, 0]}, {"vector": [1]}]}}),
    ("POST", BATCH, {"json": {"searches": [{"vector": [0, 1, 0, 0], "k": "many"}]}}),
    ("PUT", POINTS, {"json": {"points": [{"id": 3, "vector": [0, 0, 1, 0]}]}}),
    ("PUT", POINTS, {"json": {"points": [{"id": 4.5, "vector": [0, 0, 1, 0]}]}}),
    ("PUT", POINTS, {"json": {"points": [{"id": 5, "vector": [0, 0, 1]}]}}),
    ("PUT", POINTS, {"json": {"points": [{"id": 6, "vector": [0, 0, 1, 0], "payload": 1}]}}),
    ("PUT", POINTS, {"content": b"points", "headers": JSON}),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, TestClient]]:
    folder: Path = tmp_path_factory.mktemp("hot") / "data"
    app = create_app(Settings(data_dir=folder, device="cpu", max_k=1000))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.put("/collections/c", json={"dim": 4, "metric": "cosine"}).raise_for_status()
        points = [
            {"id": 1, "vector": [1, 0, 0, 0], "payload": {"n": 1}},
            {"id": 2, "vector": [0.9, 0.1, 0, 0], "payload": {"n": 2}},
            {"id": "x", "vector": [0, 1, 0, 0], "payload": {"n": 3}},
        ]
        client.put(POINTS, json={"points": points}).raise_for_status()
        yield app, client


def answer(client: TestClient, method: str, path: str, options: dict[str, Any]) -> Any:
    headers = {"x-request-id": "same-id", **options.get("headers", {})}
    sent = {**options, "headers": headers}
    response = client.request(method, path, **sent)
    kept = ("content-type", "content-length", "allow", "www-authenticate", "x-request-id")
    return (
        response.status_code,
        response.content,
        {name: response.headers.get(name) for name in kept},
    )


def _unused() -> None:
    """A dependency no route has: overriding it makes FastAPI serve every route."""


@pytest.mark.parametrize(("method", "path", "options"), CASES)
def test_a_hot_route_answers_as_fastapi_would(
    served: tuple[FastAPI, TestClient],
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    options: dict[str, Any],
) -> None:
    app, client = served
    hot_calls = []
    handle = hot_routes._HotRoute.handle

    async def counted(self: Any, *args: Any) -> None:
        hot_calls.append(1)
        await handle(self, *args)

    monkeypatch.setattr(hot_routes._HotRoute, "handle", counted)
    through_hot_path = answer(client, method, path, options)
    assert hot_calls == ([] if method == "GET" else [1])
    app.dependency_overrides[_unused] = _unused
    try:
        through_fastapi = answer(client, method, path, options)
    finally:
        app.dependency_overrides.clear()
    assert len(hot_calls) == (0 if method == "GET" else 1)
    assert through_hot_path == through_fastapi


def test_a_route_needing_what_the_hot_path_does_not_solve_is_refused(tmp_path: Path) -> None:
    app = FastAPI()

    @app.get("/items")
    async def items(limit: int = 10) -> dict[str, int]:
        return {"limit": limit}

    with pytest.raises(TypeError, match="query"):
        HotRoutes(app, api=app, endpoints=[items])


def test_an_endpoint_no_route_serves_is_refused() -> None:
    app = FastAPI()

    async def nowhere() -> None:
        """Not registered."""

    with pytest.raises(ValueError, match="nowhere"):
        HotRoutes(app, api=app, endpoints=[nowhere])
