"""Sending a job's points to a running vecserve service over HTTP.

The job reads and embeds as it does for a data folder; only the writing differs. Each
batch goes as ``PUT /collections/{name}/points`` with its vectors as base64 of
little-endian float32 (``vector_b64``). An upsert by id leaves the same state however
often it is sent, so a request that may not have been applied is sent again:

- after a connection that failed or broke, or a timeout, with exponential backoff;
- after a 429 (waiting what ``Retry-After`` asks, when sent), 502, 503 or 504. A 503
  ``EmbedderUnavailable`` is the server's configuration rather than a passing state, and
  is not retried.

A request over one of the server's limits (413: too many points in one upsert, a body too
large) is split in halves until they go through; once both halves of a refused request
went through, later requests are kept to that size. A single point refused with 413 (its
payload is over the server's limit) is rejected like a record that cannot be indexed.

A missing collection is created (cosine) with the job's embedder, so that the service can
embed text or image queries the way the job embedded the points; an existing one is filled
if it has that embedder or none, and the model's dimension. The checkpoint and the reject
file stay on this machine, in the job's state folder: a batch the service acknowledged
counts as written.
"""

from __future__ import annotations

import base64
import email.utils
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field

from indexer.errors import CollectionExists, DimensionMismatch, JobFailed
from indexer.jobs.targets import Refused
from indexer.points import PointId

__all__ = ["RemoteTarget", "Retries", "retry_after"]

# Failures after which a request may not have reached the service, or its answer was lost.
RETRIED_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
RETRIED_STATUSES = frozenset({429, 502, 503, 504})
# Errors by which the service says it cannot embed with the job's model.
_EMBEDDER_ERRORS = frozenset(
    {"UnknownEmbedder", "EmbedderNotFound", "EmbedderUnavailable", "DimensionMismatch"}
)


class Retries(BaseModel):
    """How often, and after how long, a request that may not have been applied is sent
    again: retry ``n`` (from 1) waits ``backoff * 2 ** (n - 1)`` seconds, at most
    ``max_backoff``, less a random part of up to half (so that jobs do not retry in step);
    or what the service asks with ``Retry-After``, at most ``max_retry_after``. The
    defaults keep trying for 46 to 92 seconds in all: long enough to ride out a restart."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_retries: int = Field(default=8, ge=0)
    backoff: float = Field(default=0.5, ge=0.0)
    max_backoff: float = Field(default=30.0, ge=0.0)
    max_retry_after: float = Field(default=300.0, ge=0.0)

    def delay(self, retry: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number ``retry`` (from 1), or None to give up."""
        if retry > self.max_retries:
            return None
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        delay = min(self.max_backoff, self.backoff * 2.0 ** (retry - 1))
        return delay * (1.0 - 0.5 * random.random())


class RemoteTarget:
    """A collection on a vecserve service, filled over HTTP (see the module's docstring).

    Args:
        url: the service's base URL, ``http://host:port``.
        name: the collection.
        embedder: the job's embedder, which a created collection gets too.
        state_dir: the local folder for the job's checkpoint and reject file.
        api_key: a read-write key, sent as ``Authorization: Bearer``.
        retries: how requests are retried.
        transport: the httpx transport (by default, the network).
    """

    def __init__(
        self,
        url: str,
        name: str,
        embedder: str,
        state_dir: Path,
        *,
        api_key: str | None = None,
        retries: Retries | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = url.rstrip("/")
        self._name = name
        self._embedder = embedder
        self._state_dir = state_dir
        self._retries = retries or Retries()
        self._path = f"/collections/{quote(name, safe='')}"
        headers = {"content-type": "application/json", "user-agent": "vecserve-index"}
        if api_key is not None:
            headers["authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            base_url=self._url,
            headers=headers,
            timeout=httpx.Timeout(30.0, read=300.0),
            transport=transport,
        )
        self._dim: int | None = None
        self._points = 0
        self._uid: str | None = None
        self._max_points: int | None = None

    def existing(self) -> Path | None:
        info = self._describe()
        if info is None:
            return None
        made_by = info.get("embedder")
        if made_by not in (None, self._embedder):
            raise CollectionExists(
                f"collection {self._name!r} on {self._url} is embedded by {made_by!r}; this "
                f"job embeds with {self._embedder!r}: index into another collection"
            )
        self._dim = int(info["dim"])
        self._points = int(info["count"])
        self._uid = info.get("uid")
        return self._state_dir

    def points(self) -> int:
        return self._points

    def count(self) -> int:
        info = self._describe()
        return int(info["count"]) if info is not None else 0

    def uid(self) -> str | None:
        return self._uid

    def prepare(self, dim: int) -> Path:
        if self._dim is not None:
            if self._dim != dim:
                raise DimensionMismatch(
                    f"collection {self._name!r} on {self._url} has dimension {self._dim}, but "
                    f"embedder {self._embedder!r} makes vectors of dimension {dim}"
                )
            return self._state_dir
        config = {"dim": dim, "metric": "cosine", "embedder": self._embedder}
        response = self._request("PUT", self._path, orjson.dumps(config))
        name, message = _error_of(response)
        if response.status_code == 409:
            raise CollectionExists(
                f"collection {self._name!r} already exists on {self._url} with another "
                f"configuration than this job's ({message})"
            )
        if name in _EMBEDDER_ERRORS:
            raise JobFailed(
                f"the vecserve service at {self._url} cannot embed with {self._embedder!r} "
                f"({name}: {message}); to send it vectors only, create the collection "
                f'without an embedder first (PUT {self._url}{self._path} {{"dim": {dim}, '
                '"metric": "cosine"}) and run the job again'
            )
        if response.status_code not in (200, 201):
            raise self._failure(response, f"create collection {self._name!r}")
        self._dim = dim
        self._uid = response.json().get("uid")
        return self._state_dir

    def upsert(
        self, ids: list[PointId], vectors: np.ndarray, payloads: list[dict[str, Any]]
    ) -> Refused:
        points = _Points(ids, vectors, payloads)
        refused: Refused = []
        size = min(len(ids), self._max_points or len(ids))
        for start in range(0, len(ids), size):
            self._send(points, start, min(start + size, len(ids)), refused)
        return refused

    def finish(self) -> None:
        """Nothing to do: the service builds indexes in the background as a collection
        grows."""

    def close(self) -> None:
        self._client.close()

    def _describe(self) -> dict[str, Any] | None:
        """``GET /collections/{name}``: the collection's description, None if missing."""
        response = self._request("GET", self._path)
        if response.status_code == 404 and _error_of(response)[0] == "CollectionNotFound":
            return None
        if response.status_code != 200:
            raise self._failure(response, f"describe collection {self._name!r}")
        info: dict[str, Any] = response.json()
        return info

    def _send(self, points: _Points, start: int, stop: int, refused: Refused) -> bool:
        """Upsert points ``start:stop``, split while the service finds them too many;
        True when they went through in this one request."""
        response = self._request("PUT", f"{self._path}/points", points.body(start, stop))
        if response.status_code == 200:
            return True
        if response.status_code != 413:
            raise self._failure(response, f"upsert {stop - start:,} points into {self._name!r}")
        if stop - start == 1:
            refused.append((start, f"refused by the service: {_error_of(response)[1]}"))
            return False
        middle = (start + stop) // 2
        whole = self._send(points, start, middle, refused)
        whole = self._send(points, middle, stop, refused) and whole
        if whole:
            # The request was too large, and both its halves were not: keep to that size.
            self._max_points = min(self._max_points or stop - middle, stop - middle)
        return False

    def _request(self, method: str, path: str, body: bytes | None = None) -> httpx.Response:
        retry = 0
        while True:
            retry += 1
            try:
                response = self._client.request(method, path, content=body)
            except RETRIED_ERRORS as exc:
                delay = self._retries.delay(retry)
                if delay is None:
                    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    raise JobFailed(
                        f"cannot reach the vecserve service at {self._url} ({reason}); "
                        f"gave up after {retry} tries"
                    ) from None
            else:
                if not _transient(response):
                    return response
                delay = self._retries.delay(retry, retry_after(response))
                if delay is None:
                    return response
            time.sleep(delay)

    def _failure(self, response: httpx.Response, action: str) -> JobFailed:
        name, message = _error_of(response)
        error = f"{name} ({response.status_code}): {message}"
        if response.status_code in (401, 403):
            return JobFailed(
                f"the vecserve service at {self._url} refused to {action}: {error}; give it "
                "a read-write API key with --api-key or VECSERVE_API_KEY"
            )
        return JobFailed(f"the vecserve service at {self._url} could not {action}: {error}")


class _Points:
    """A batch's points, encoded to JSON a range at a time."""

    def __init__(
        self, ids: list[PointId], vectors: np.ndarray, payloads: list[dict[str, Any]]
    ) -> None:
        self._ids = ids
        self._payloads = payloads
        rows = np.ascontiguousarray(vectors, dtype="<f4")
        self._raw = rows.tobytes()
        self._row_bytes = rows.shape[1] * 4

    def body(self, start: int, stop: int) -> bytes:
        step = self._row_bytes
        points = [
            {
                "id": self._ids[i],
                "vector_b64": base64.b64encode(self._raw[i * step : (i + 1) * step]).decode(),
                "payload": self._payloads[i],
            }
            for i in range(start, stop)
        ]
        return orjson.dumps({"points": points}, option=orjson.OPT_SERIALIZE_NUMPY)


def _error_of(response: httpx.Response) -> tuple[str, str]:
    """The error name and message of a response: vecserve's JSON error body, or else the
    status and the start of the body (a proxy's error page, say)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"], str(body.get("message", ""))
    text = " ".join(response.text[:200].split())
    return f"HTTP {response.status_code}", text or response.reason_phrase


def _transient(response: httpx.Response) -> bool:
    if response.status_code not in RETRIED_STATUSES:
        return False
    return _error_of(response)[0] != "EmbedderUnavailable"


def retry_after(response: httpx.Response) -> float | None:
    """Seconds that ``Retry-After`` asks to wait (given as seconds or as a date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
