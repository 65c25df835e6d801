"""Checks on what callers hand a collection: k, page sizes, and payloads that JSON can
carry as given."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from indexer.errors import InvalidInput, InvalidK, InvalidPayload

MAX_K = 10_000


def check_k(k: object) -> int:
    if isinstance(k, np.integer):
        k = int(k)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidK(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return k


def check_limit(limit: int) -> None:
    """A page's size: from 1 to MAX_K."""
    if not 1 <= limit <= MAX_K:
        raise InvalidInput(f"limit must be between 1 and {MAX_K}, got {limit}")


def payload_json(payload: dict[str, Any] | None, row: int | str) -> str:
    """The payload as the store keeps it, JSON text; ``row`` names it in errors (its
    position in a batch, or words such as "of point 7")."""
    if payload is None:
        return "{}"
    if not isinstance(payload, dict):
        raise InvalidPayload(f"payload {row} must be a JSON object, got {type(payload).__name__}")
    try:
        text = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError as exc:
        raise InvalidPayload(f"payload {row} is not JSON: {exc}") from None
    # orjson writes NaN and infinity as null: refuse them rather than change the payload.
    if "null" in text and not all_finite(payload):
        raise InvalidPayload(f"payload {row} holds NaN or infinity, which JSON cannot carry")
    return text


def all_finite(value: object) -> bool:
    """Whether every float in a JSON-like value is finite."""
    if isinstance(value, float | np.floating):
        return bool(np.isfinite(value))
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(all_finite(v) for v in value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        return bool(np.isfinite(value).all())
    return True
