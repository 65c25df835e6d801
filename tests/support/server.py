"""The real service in a process of its own, for tests: :class:`Server` (from
:mod:`harness.server`, which the benchmarks use too) and the type of the session's
``new_server`` fixture that makes them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from harness.server import Server, free_port

__all__ = ["NewServer", "Server", "free_port"]


class NewServer(Protocol):
    """The ``new_server`` fixture: a :class:`Server` on ``data_dir`` (a fresh folder by
    default), made with ``env`` and ``options`` (see :class:`Server`), not yet started."""

    def __call__(
        self, env: Mapping[str, str] | None = None, *, data_dir: Path | None = None, **options: Any
    ) -> Server: ...
