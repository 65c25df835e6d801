"""Collections set up over HTTP for a test, whatever the test before left."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx


def recreate(http: httpx.Client, path: str, config: dict[str, Any], points: list[Any]) -> None:
    """The collection at ``path`` as new: dropped if there, made with ``config``, holding
    ``points``."""
    http.delete(path)
    http.put(path, json=config).raise_for_status()
    http.put(f"{path}/points", json={"points": points}).raise_for_status()


def client_on_fresh(
    url: str, path: str, config: dict[str, Any], points: list[Any]
) -> Iterator[httpx.Client]:
    """A client on the service at ``url`` whose collection at ``path`` is new (see
    :func:`recreate`), for a fixture to yield from."""
    with httpx.Client(base_url=url, timeout=30) as client:
        recreate(client, path, config, points)
        yield client
