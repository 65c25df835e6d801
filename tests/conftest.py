from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer import Engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a fresh folder; maintenance runs only when a test calls optimize()."""
    with Engine(tmp_path / "data", background=False) as e:
        yield e
