"""Health through the SDK."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from vecserve_client import Client, Health


def test_a_serving_server_is_ready(client: Client) -> None:
    assert client.health() == Health(ready=True, status="ready")


def test_a_starting_server_is_not_ready_yet(mock_client: Callable[..., Client]) -> None:
    client = mock_client(lambda request: httpx.Response(503, json={"status": "starting"}))
    assert client.health() == Health(ready=False, status="starting")
