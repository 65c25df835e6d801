from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import NewServer, Server


@pytest.fixture
def server(tmp_path: Path, new_server: NewServer) -> Iterator[Server]:
    with new_server(data_dir=tmp_path / "data") as s:
        yield s


@pytest.fixture(scope="session")
def plain_server(new_server: NewServer) -> Iterator[Server]:
    """The service with its default settings, shared by the modules whose tests each set
    up the collection they use."""
    with new_server() as s:
        yield s


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
