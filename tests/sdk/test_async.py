"""What only the async client has: async iteration, tasks in flight, an app in the
test's own event loop; and the sync client's thread pool, for comparison."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.server import NewServer
from vecserve_client import AsyncClient, Client, DimensionMismatch, Point

from .conftest import make_app

pytestmark = pytest.mark.anyio

rng = np.random.default_rng(41)


class InFlight:
    """Counts upsert requests being answered at once."""

    def __init__(self) -> None:
        self.now = self.most = self.requests = 0
        self.lock = threading.Lock()

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.requests += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1

    @staticmethod
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"upserted": len(json.loads(request.content)["points"])})


async def test_parallel_upsert_keeps_at_most_parallel_batches_in_flight() -> None:
    flight = InFlight()

    async def handler(request: httpx.Request) -> httpx.Response:
        flight.enter()
        await asyncio.sleep(0.01)
        flight.leave()
        return flight.answer(request)

    async with AsyncClient("http://test", transport=httpx.MockTransport(handler)) as client:
        n = 20 * 10
        written = await client.upsert(
            "c", list(range(n)), np.zeros((n, 2)), batch_size=10, parallel=3
        )
    assert (written, flight.requests, flight.most) == (n, 20, 3)


def test_sync_parallel_upsert_runs_batches_on_threads() -> None:
    flight = InFlight()

    def handler(request: httpx.Request) -> httpx.Response:
        flight.enter()
        time.sleep(0.01)
        flight.leave()
        return flight.answer(request)

    with Client("http://test", transport=httpx.MockTransport(handler)) as client:
        n = 20 * 10
        written = client.upsert("c", list(range(n)), np.zeros((n, 2)), batch_size=10, parallel=3)
    assert (written, flight.requests) == (n, 20)
    assert 1 < flight.most <= 3


async def test_a_failing_batch_raises_and_cancels_the_batches_not_yet_sent() -> None:
    sent = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal sent
        sent += 1
        await asyncio.sleep(0.01)
        if sent == 2:
            body = {"error": "DimensionMismatch", "message": "dim", "request_id": "x"}
            return httpx.Response(422, json=body)
        return InFlight.answer(request)

    async with AsyncClient("http://test", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(DimensionMismatch):
            await client.upsert("c", list(range(100)), np.zeros((100, 2)), batch_size=5, parallel=2)
    assert sent < 20


async def test_scroll_is_an_async_iterator(tmp_path: Path, new_server: NewServer) -> None:
    with new_server(data_dir=tmp_path / "data") as server:
        async with AsyncClient(server.url) as client:
            await client.create_collection("items", 3)
            await client.upsert("items", list(range(12)), rng.standard_normal((12, 3)))
            ids = [point.id async for point in client.scroll("items", page_size=5)]
            assert sorted(ids) == list(range(12))
            async for point in client.scroll("items", filter={"none": 1}):
                raise AssertionError(point)


async def test_the_app_in_process_under_the_tests_own_event_loop(tmp_path: Path) -> None:
    """How users test against vecserve without a network: ASGITransport, with the
    app's lifespan entered by hand (httpx does not run it)."""
    app = make_app(tmp_path / "data")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient("http://vecserve.test", transport=transport) as client:
            await client.create_collection("items", 2, metric="l2")
            await client.upsert("items", ["a", "b"], [[0.0, 0.0], [5.0, 5.0]])
            hits = await client.search("items", [4.0, 4.0], k=1)
            assert hits[0].id == "b"
            points = await client.get("items", ["a"], with_vectors=True)
            assert isinstance(points[0], Point)
            assert (await client.health()).ready
