"""Fixtures for the SDK tests.

The ``client`` fixture runs each test body four times: the sync ``Client`` and the
``AsyncClient``, each against the real server under uvicorn on 127.0.0.1 and against the
app in-process through httpx's ASGI transport. The async client is driven through a
blocking portal (:class:`BlockingAsyncClient`), so one synchronous test body covers both
clients; its coroutines still run on a real event loop.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from service.app import create_app
from service.settings import Settings
from tests.support.server import NewServer, Server
from vecserve_client import AsyncClient, Client, NotFound

# Small limits, so that batching against them is cheap to test.
LIMITS = {"max_points_per_upsert": 100, "max_queries_per_batch": 32, "max_k": 500}
ASGI_URL = "http://vecserve.test"


class BlockingAsyncClient:
    """An :class:`AsyncClient` called from synchronous code: each method runs on the
    portal's event loop, and ``scroll`` is collected there into an iterator."""

    def __init__(self, client: AsyncClient, portal: BlockingPortal) -> None:
        self.client = client
        self.portal = portal

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)
        if inspect.isasyncgenfunction(method):

            def collect(*args: Any, **kwargs: Any) -> Iterator[Any]:
                async def run() -> list[Any]:
                    return [item async for item in method(*args, **kwargs)]

                return iter(self.portal.call(run))

            return collect

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.portal.call(functools.partial(method, *args, **kwargs))

        return call


class PortalASGITransport(httpx.BaseTransport):
    """httpx's ASGI transport for the synchronous client: each request runs on the
    portal's event loop, where the app's lifespan runs too."""

    def __init__(self, app: FastAPI, portal: BlockingPortal) -> None:
        self.asgi = httpx.ASGITransport(app=app)
        self.portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def send() -> tuple[int, httpx.Headers, bytes]:
            forwarded = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await self.asgi.handle_async_request(forwarded)
            return response.status_code, response.headers, await response.aread()

        status, headers, content = self.portal.call(send)
        return httpx.Response(status, headers=headers, content=content, request=request)


@pytest.fixture(scope="session")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal("asyncio") as portal:
        yield portal


@pytest.fixture(scope="session")
def uvicorn_server(new_server: NewServer) -> Iterator[Server]:
    env = {f"VECSERVE_{key.upper()}": str(value) for key, value in LIMITS.items()}
    with new_server(env) as server:
        yield server


def make_app(data_dir: Path, **settings: Any) -> FastAPI:
    return create_app(Settings(data_dir=data_dir, device="cpu", **LIMITS, **settings))


@pytest.fixture(scope="session")
def asgi_app(tmp_path_factory: pytest.TempPathFactory, portal: BlockingPortal) -> Iterator[FastAPI]:
    """The app in-process; httpx's ASGI transport does not run the lifespan, so this does."""
    app = make_app(tmp_path_factory.mktemp("asgi") / "data")
    with portal.wrap_async_context_manager(app.router.lifespan_context(app)):
        yield app


def connect(
    flavour: str,
    target: str,
    request: pytest.FixtureRequest,
    portal: BlockingPortal,
    **options: Any,
) -> Iterator[Any]:
    """A client of ``flavour`` (sync or async) on ``target`` (uvicorn or asgi)."""
    if target == "uvicorn":
        url = request.getfixturevalue("uvicorn_server").url
        app = None
    else:
        url = ASGI_URL
        app = request.getfixturevalue("asgi_app")
    if flavour == "sync":
        transport = None if app is None else PortalASGITransport(app, portal)
        with Client(url, transport=transport, **options) as client:
            yield client
    else:
        async_transport = None if app is None else httpx.ASGITransport(app=app)
        async_client = AsyncClient(url, transport=async_transport, **options)
        yield BlockingAsyncClient(async_client, portal)
        portal.call(async_client.close)


@pytest.fixture(params=["sync-uvicorn", "async-uvicorn", "sync-asgi", "async-asgi"])
def client(request: pytest.FixtureRequest, portal: BlockingPortal) -> Iterator[Client]:
    """Each of the two clients against each of the two transports (typed as ``Client``:
    the async one is called through :class:`BlockingAsyncClient`)."""
    flavour, target = request.param.split("-")
    yield from connect(flavour, target, request, portal)


@pytest.fixture
def name(client: Client) -> Iterator[str]:
    """A fresh collection name, dropped after the test."""
    collection = f"t{uuid.uuid4().hex[:12]}"
    yield collection
    with contextlib.suppress(NotFound):
        client.delete_collection(collection)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(params=["sync", "async"])
def mock_client(
    request: pytest.FixtureRequest, portal: BlockingPortal
) -> Iterator[Callable[..., Client]]:
    """Make a client of each flavour whose requests ``handler`` answers (MockTransport)."""
    closers: list[Callable[[], Any]] = []

    def make(handler: Handler, **options: Any) -> Any:
        transport = httpx.MockTransport(handler)
        if request.param == "sync":
            sync_client = Client("http://test", transport=transport, **options)
            closers.append(sync_client.close)
            return sync_client
        async_client = AsyncClient("http://test", transport=transport, **options)
        closers.append(lambda: portal.call(async_client.close))
        return BlockingAsyncClient(async_client, portal)

    yield make
    for close in closers:
        close()
