from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from indexer import Engine
from indexer.devices import gpu_count
from tests.support.server import NewServer, Server


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip cleanly where FAISS sees no GPU (CI, laptops)."""
    if gpu_count():
        return
    skip = pytest.mark.skip(reason="no GPU visible to FAISS")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a fresh folder; maintenance runs only when a test calls optimize()."""
    with Engine(tmp_path / "data", background=False) as e:
        yield e


@pytest.fixture(scope="session")
def new_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NewServer]:
    """Make a :class:`Server` (not yet started: ``with`` starts it) on ``data_dir``, by
    default a fresh folder; any still running when the session ends is stopped then."""
    made: list[Server] = []

    def make(
        env: Mapping[str, str] | None = None, *, data_dir: Path | None = None, **options: Any
    ) -> Server:
        folder = data_dir or tmp_path_factory.mktemp("server") / "data"
        made.append(Server(folder, env, **options))
        return made[-1]

    yield make
    for server in made:
        server.stop()
