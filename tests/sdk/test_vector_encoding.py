"""Vectors on the wire through the SDK: whenever a method asks for vectors it asks for them
as base64 of little-endian float32 and decodes them into writable float32 arrays;
recommend sends its vector examples in that form too. Each client, against each
transport, with every exchange recorded."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from anyio.from_thread import BlockingPortal

from vecserve_client import AsyncClient, Client, NotFound

from .conftest import ASGI_URL, BlockingAsyncClient, PortalASGITransport

rng = np.random.default_rng(31)
DATA = rng.standard_normal((40, 8)).astype(np.float32)
VECTOR_ROUTES = ("/points/get", "/points/", "/points/scroll", "/search", "/recommend")


@dataclass
class Recording:
    """Every request a client sent, with the JSON of its answer."""

    exchanges: list[tuple[httpx.Request, Any]] = field(default_factory=list)

    def add(self, request: httpx.Request, response: httpx.Response) -> None:
        is_json = response.headers.get("content-type", "").startswith("application/json")
        self.exchanges.append((request, response.json() if is_json else None))

    def asked_vectors(self) -> list[tuple[dict[str, Any], Any]]:
        """The options of each request to a route that returns vectors (body or query),
        with its answer."""
        found = []
        for request, answer in self.exchanges:
            if not any(route in request.url.path for route in VECTOR_ROUTES):
                continue
            if request.method == "GET":
                options: dict[str, Any] = dict(request.url.params)
            else:
                options = json.loads(request.content)
            found.extend((o, answer) for o in options.get("searches", [options]))
        return found


class RecordingTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, recording: Recording) -> None:
        self.inner = inner
        self.recording = recording

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.recording.add(request, response)
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncRecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, recording: Recording) -> None:
        self.inner = inner
        self.recording = recording

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.recording.add(request, response)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(params=["sync-uvicorn", "async-uvicorn", "sync-asgi", "async-asgi"])
def recorded(
    request: pytest.FixtureRequest, portal: BlockingPortal
) -> Iterator[tuple[Client, Recording, str]]:
    """A client whose exchanges are recorded, and a fresh collection of DATA (8-d, l2)."""
    flavour, target = request.param.split("-")
    if target == "uvicorn":
        url = request.getfixturevalue("uvicorn_server").url
        sync_inner: httpx.BaseTransport = httpx.HTTPTransport()
        async_inner: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport()
    else:
        url = ASGI_URL
        app = request.getfixturevalue("asgi_app")
        sync_inner = PortalASGITransport(app, portal)
        async_inner = httpx.ASGITransport(app=app)
    recording = Recording()
    name = f"t{uuid.uuid4().hex[:12]}"
    with contextlib.ExitStack() as stack:
        client: Any
        if flavour == "sync":
            client = stack.enter_context(
                Client(url, transport=RecordingTransport(sync_inner, recording))
            )
        else:
            async_client = AsyncClient(
                url, transport=AsyncRecordingTransport(async_inner, recording)
            )
            stack.callback(portal.call, async_client.close)
            client = BlockingAsyncClient(async_client, portal)
        client.create_collection(name, 8, metric="l2", index="flat")
        client.upsert(name, list(range(len(DATA))), DATA)
        recording.exchanges.clear()
        yield client, recording, name
        with contextlib.suppress(NotFound):
            client.delete_collection(name)


def b64(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def test_vectors_are_asked_for_as_base64_when_wanted_and_come_back_writable_float32(
    recorded: tuple[Client, Recording, str],
) -> None:
    client, recording, name = recorded
    returned = [
        *client.get(name, [3, 9], with_vectors=True),
        client.get_point(name, 5, with_vectors=True),
        *client.scroll(name, with_vectors=True, page_size=16),
        *client.search(name, DATA[7], k=2, with_vectors=True),
        *[
            hit
            for hits in client.search_batch(name, DATA[:2], k=1, with_vectors=True)
            for hit in hits
        ],
        *client.recommend(name, [11, 12], k=2, with_vectors=True),
    ]
    assert len(returned) == 2 + 1 + 40 + 2 + 2 + 2
    for item in returned:
        vector = item.vector
        assert isinstance(vector, np.ndarray)
        assert vector.dtype == np.float32
        assert vector.flags.writeable
        assert isinstance(item.id, int)
        np.testing.assert_array_equal(vector, DATA[item.id])  # exact: float32 both ways
        vector *= 2  # the caller's own array: writing to it works
    asked = recording.asked_vectors()
    assert len(asked) == 1 + 1 + 3 + 1 + 2 + 1  # scroll: three pages of 16; batch: two
    for options, answer in asked:
        assert (options["with_vectors"], options["vector_encoding"]) in [
            (True, "b64"),
            ("true", "b64"),
        ]
        items = answer.get("points") or answer.get("hits") or answer.get("results") or [answer]
        for item in items:
            for each in item.get("hits", [item]):
                assert "vector_b64" in each
                assert "vector" not in each

    # Without vectors the option is left out, so that a server which predates it answers.
    recording.exchanges.clear()
    assert client.get(name, [3])[0].vector is None
    assert client.get_point(name, 3).vector is None
    assert all(p.vector is None for p in client.scroll(name))
    assert client.search(name, DATA[3], k=1)[0].vector is None
    assert client.search_batch(name, DATA[:1], k=1)[0][0].vector is None
    assert client.recommend(name, [DATA[3]], k=1)[0].vector is None
    asked = recording.asked_vectors()
    assert len(asked) == 6
    assert all("vector_encoding" not in options for options, _ in asked)


def test_recommend_sends_vector_examples_as_base64(
    recorded: tuple[Client, Recording, str],
) -> None:
    client, recording, name = recorded
    hits = client.recommend(name, [DATA[4], 6], negative=[DATA[30].tolist()], k=3)
    query = 2 * (DATA[4] + DATA[6]) / 2 - DATA[30]  # the average strategy's query
    nearest = [int(i) for i in np.argsort(np.linalg.norm(DATA - query, axis=1)) if i != 6]
    assert [h.id for h in hits] == nearest[:3]  # the id example is left out
    ((body, _),) = recording.asked_vectors()
    assert body["positive"] == [{"vector_b64": b64(DATA[4])}, 6]
    assert body["negative"] == [{"vector_b64": b64(DATA[30])}]
    float64 = client.recommend(name, [DATA[4].astype(np.float64)], k=3, strategy="best_score")
    assert float64[0].id == 4
