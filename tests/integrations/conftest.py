"""A real vecserve under uvicorn on 127.0.0.1, with API keys, shared by the integrations'
tests (one server: its text model loads once)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import NewServer, Server

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
