"""Collections set up over HTTP for a test, whatever the test before left."""

from __future__ import annotations

from typing import Any

import httpx


def recreate(http: httpx.Client, path: str, config: dict[str, Any], points: list[Any]) -> None:
    """The collection at ``path`` as new: dropped if there, made with ``config``, holding
    ``points``."""
    http.delete(path)
    http.put(path, json=config).raise_for_status()
    http.put(f"{path}/points", json={"points": points}).raise_for_status()
