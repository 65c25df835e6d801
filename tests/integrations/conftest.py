"""A real vecserve under uvicorn on 127.0.0.1, with API keys, shared by the integrations'
tests (one server: its text model loads once)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import NewServer, Server
from vecserve_client import AsyncClient, Client

READ_WRITE = "rw-key-0123456789abcdef"
READ_ONLY = "ro-key-0123456789abcdef"


@pytest.fixture(scope="session")
def vecserve(new_server: NewServer) -> Iterator[Server]:
    env = {
        "VECSERVE_API_KEYS": READ_WRITE,
        "VECSERVE_READ_ONLY_API_KEYS": READ_ONLY,
        # Wide enough that concurrent requests reliably share a batch; a request that
        # finds its lane idle still goes at once.
        "VECSERVE_BATCH_WINDOW_MS": "50",
    }
    with new_server(env) as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def client(vecserve: Server) -> Iterator[Client]:
    with Client(vecserve.url, api_key=READ_WRITE) as client:
        yield client


def unpooled_async_client(server: Server) -> AsyncClient:
    """An async client that keeps no connection open between requests: each async test
    runs on an event loop of its own, and this client needs no closing on it."""
    no_pool = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    return AsyncClient(server.url, api_key=READ_WRITE, transport=no_pool)


def fresh_name(prefix: str) -> str:
    """A collection name no other test uses."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"
