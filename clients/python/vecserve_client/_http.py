"""What both clients send with: default timeout and retries, headers and URLs."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import httpx

from vecserve_client._transport import Retries
from vecserve_client._version import __version__

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
"""30 s to answer, 5 s to connect. Pass ``timeout=`` for long snapshot transfers."""

DEFAULT_RETRIES = Retries()

SHA256_HEADER = "x-checksum-sha256"
"""The header with which the server announces a snapshot file's SHA-256."""

CHUNK = 1 << 20
"""Bytes read or written at a time when a snapshot file is sent or received."""


def client_headers(api_key: str | None, headers: Mapping[str, str] | None) -> dict[str, str]:
    out = {"user-agent": f"vecserve-client/{__version__}", **(headers or {})}
    if api_key is not None:
        out["authorization"] = f"Bearer {api_key}"
    return out


def collection_url(name: str, *rest: str) -> str:
    return "/".join(["/collections", quote(name, safe=""), *(quote(p, safe="") for p in rest)])
