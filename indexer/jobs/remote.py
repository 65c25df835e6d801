"""Sending a job's points to a running vecserve service, through the SDK.

The job reads and embeds as it does for a data folder; only the writing differs. Each
batch is an upsert through :class:`vecserve_client.Client`, which sends the vectors in the
compact form and sends again a request that may not have been applied, as the SDK's one
retry policy says (:mod:`vecserve_client._transport._policy`): the job only gives it more
patient values (:class:`Retries`), to ride out a restart of the service.

What is the job's own:

- A request over one of the server's limits (413: too many points in one upsert, a body
  too large) is split in halves until they go through; once both halves of a refused
  request went through, later requests are kept to that size. A single point refused
  with 413 (its payload is over the server's limit) is rejected like a record that cannot
  be indexed.
- A missing collection is created (cosine) with the job's embedder, so that the service
  can embed text or image queries the way the job embedded the points; an existing one
  is filled if it has that embedder or none, and the model's dimension.
- The checkpoint and the reject file stay on this machine, in the job's state folder, and
  name the collection by its uid (so a collection dropped and made again is filled anew):
  a batch the service acknowledged counts as written.
- Every error of the service or the network ends the job with a :class:`JobFailed` that
  says what it could not do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import Field

import vecserve_client
from indexer.errors import CollectionExists, DimensionMismatch, JobFailed
from indexer.jobs.targets import Refused
from indexer.points import PointId
from vecserve_client._exceptions import retry_after

# retry_after: the SDK's reading of Retry-After, which the job's retries follow.
__all__ = ["RemoteTarget", "Retries", "retry_after"]

# Errors by which the service says it cannot embed with the job's model.
_EMBEDDER_ERRORS = (
    vecserve_client.UnknownEmbedder,
    vecserve_client.EmbedderNotFound,
    vecserve_client.EmbedderUnavailable,
    vecserve_client.DimensionMismatch,
)


class Retries(vecserve_client.Retries):
    """The SDK's retry policy with a batch job's values: they keep trying for 46 to 92
    seconds in all, long enough to ride out a restart of the service, and when the
    service asks to wait longer than ``max_retry_after``, wait that long and try again
    rather than stop."""

    max_retries: int = Field(default=8, ge=0)
    backoff: float = Field(default=0.5, ge=0.0)
    max_backoff: float = Field(default=30.0, ge=0.0)
    max_retry_after: float = Field(default=300.0, ge=0.0)
    cap_retry_after: bool = True


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
        self._client = vecserve_client.Client(
            self._url,
            api_key=api_key,
            # A large batch may take the service a while to write.
            timeout=httpx.Timeout(30.0, read=300.0),
            retries=self._retries,
            headers={"user-agent": "vecserve-index"},
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
        if info.embedder not in (None, self._embedder):
            raise CollectionExists(
                f"collection {self._name!r} on {self._url} is embedded by {info.embedder!r}; "
                f"this job embeds with {self._embedder!r}: index into another collection"
            )
        self._dim = info.dim
        self._points = info.count
        self._uid = info.uid
        return self._state_dir

    def points(self) -> int:
        return self._points

    def count(self) -> int:
        info = self._describe()
        return info.count if info is not None else 0

    def uid(self) -> str | None:
        return self._uid

    def prepare(self, dim: int | None) -> Path:
        if self._dim is not None:
            if dim is not None and self._dim != dim:
                raise DimensionMismatch(
                    f"collection {self._name!r} on {self._url} has dimension {self._dim}, but "
                    f"embedder {self._embedder!r} makes vectors of dimension {dim}"
                )
            return self._state_dir
        assert dim is not None, "a collection to make needs the model's dimension"
        with self._failing(f"create collection {self._name!r}"):
            try:
                info = self._client.create_collection(
                    self._name, dim, metric="cosine", embedder=self._embedder
                )
            except vecserve_client.Conflict as exc:
                raise CollectionExists(
                    f"collection {self._name!r} already exists on {self._url} with another "
                    f"configuration than this job's ({exc.message})"
                ) from None
            except _EMBEDDER_ERRORS as exc:
                raise JobFailed(
                    f"the vecserve service at {self._url} cannot embed with "
                    f"{self._embedder!r} ({exc.name}: {exc.message}); to send it vectors "
                    "only, create the collection without an embedder first (PUT "
                    f'{self._url}/collections/{self._name} {{"dim": {dim}, "metric": '
                    '"cosine"}) and run the job again'
                ) from None
        self._dim = dim
        self._uid = info.uid
        return self._state_dir

    def upsert(
        self, ids: list[PointId], vectors: np.ndarray, payloads: list[dict[str, Any]]
    ) -> Refused:
        refused: Refused = []
        size = min(len(ids), self._max_points or len(ids))
        for start in range(0, len(ids), size):
            self._send(ids, vectors, payloads, start, min(start + size, len(ids)), refused)
        return refused

    def vectors(self, ids: list[PointId]) -> list[np.ndarray | None]:
        with self._failing(f"get {len(ids):,} points of {self._name!r}"):
            points = self._client.get(self._name, ids, with_vectors=True)
        found = {(type(p.id), p.id): p.vector for p in points}
        return [found.get((type(i), i)) for i in ids]

    def finish(self) -> None:
        """Nothing to do: the service builds indexes in the background as a collection
        grows."""

    def close(self) -> None:
        self._client.close()

    def _describe(self) -> vecserve_client.CollectionInfo | None:
        """The collection's description, None if it does not exist."""
        with self._failing(f"describe collection {self._name!r}"):
            try:
                return self._client.get_collection(self._name)
            except vecserve_client.CollectionNotFound:
                return None

    def _send(
        self,
        ids: list[PointId],
        vectors: np.ndarray,
        payloads: list[dict[str, Any]],
        start: int,
        stop: int,
        refused: Refused,
    ) -> bool:
        """Upsert points ``start:stop`` in one request, split while the service finds them
        too many; True when they went through in this one request."""
        with self._failing(f"upsert {stop - start:,} points into {self._name!r}"):
            try:
                self._client.upsert(
                    self._name,
                    ids[start:stop],
                    vectors[start:stop],
                    payloads=payloads[start:stop],
                    batch_size=stop - start,
                )
            except vecserve_client.RequestTooLarge as exc:
                reason = exc.message
            else:
                return True
        if stop - start == 1:
            refused.append((start, f"refused by the service: {reason}"))
            return False
        middle = (start + stop) // 2
        whole = self._send(ids, vectors, payloads, start, middle, refused)
        whole = self._send(ids, vectors, payloads, middle, stop, refused) and whole
        if whole:
            # The request was too large, and both its halves were not: keep to that size.
            self._max_points = min(self._max_points or stop - middle, stop - middle)
        return False

    @contextmanager
    def _failing(self, action: str) -> Iterator[None]:
        """Turn the SDK's errors, left once its retries are spent, into the job's."""
        try:
            yield
        except vecserve_client.APIError as exc:
            raise self._failure(exc, action) from None
        except vecserve_client.ConnectError as exc:
            raise JobFailed(
                f"cannot reach the vecserve service at {self._url} ({type(exc).__name__}: "
                f"{exc}); gave up after {self._retries.max_retries + 1} tries"
            ) from None
        except vecserve_client.TransportError as exc:
            raise JobFailed(
                f"no answer from the vecserve service at {self._url} to {action} "
                f"({type(exc).__name__}: {exc})"
            ) from None

    def _failure(self, exc: vecserve_client.APIError, action: str) -> JobFailed:
        # Not vecserve's error JSON (a proxy's error page, say): the start of the body.
        message = exc.message if exc.name else " ".join(exc.message[:200].split())
        error = f"{exc.name or f'HTTP {exc.status_code}'} ({exc.status_code}): {message}"
        if exc.status_code in (401, 403):
            return JobFailed(
                f"the vecserve service at {self._url} refused to {action}: {error}; give it "
                "a read-write API key with --api-key or VECSERVE_API_KEY"
            )
        return JobFailed(f"the vecserve service at {self._url} could not {action}: {error}")
