"""A real vecserve under uvicorn on 127.0.0.1, shared by the integrations' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import Server


@pytest.fixture(scope="session")
def vecserve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("integrations") / "data") as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
