from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer import Engine
from indexer.devices import gpu_count


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
