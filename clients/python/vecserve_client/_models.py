"""What the methods return: typed views of the server's answers.

Fields the server adds later are ignored rather than rejected, so an older SDK keeps
working against a newer server.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

from vecserve_client._types import PointId


def _as_array(value: object) -> object:
    """A vector from the wire (a JSON array, or base64 of little-endian float32) as a
    writable float32 numpy array of its own."""
    if value is None or isinstance(value, np.ndarray):
        return value
    if isinstance(value, str):
        # Over a bytearray, not the bytes: an array over bytes would be read-only.
        raw = np.frombuffer(bytearray(base64.b64decode(value, validate=True)), dtype="<f4")
        return raw.astype(np.float32, copy=False)
    return np.asarray(value, dtype=np.float32)


VectorOut = Annotated[npt.NDArray[np.float32] | None, BeforeValidator(_as_array)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", arbitrary_types_allowed=True)


class _WithVector(_Model):
    @model_validator(mode="before")
    @classmethod
    def _compact_vector(cls, data: Any) -> Any:
        """Accept the vector in the compact form (``vector_b64``) as well."""
        if isinstance(data, dict) and "vector_b64" in data:
            data = {**data, "vector": data["vector_b64"]}
        return data


class Hit(_WithVector):
    """One search result.

    Attributes:
        id: the point's id.
        score: similarity for ``cosine`` and ``dot`` (higher is nearer), Euclidean
            distance for ``l2`` (lower is nearer).
        payload: the point's payload, or None when ``with_payload=False``.
        vector: the stored vector as a float32 array, when ``with_vectors=True``.
    """

    id: PointId
    score: float
    payload: dict[str, Any] | None = None
    vector: VectorOut = None


class QueryHit(Hit):
    """One result of a query pipeline.

    Attributes:
        score: the last step's score: the rerank's if there was one, else the fused
            score (or the stage's own for a one-stage query).
        explain: with ``explain=True``: ``stages`` (each stage's ``kind``, and ``rank``
            from 1 and ``score`` where it found this point), ``fused``, and ``rerank``.
    """

    explain: dict[str, Any] | None = None


class QueryResult(_Model):
    """What a query returns.

    Attributes:
        hits: the results, best first.
        full_text: while a full-text declaration is still being indexed, the points the
            lexical stages covered (``{"indexed": n, "total": m}``); else None.
        missing_shards: for a ``partial`` query to a cluster, the shards that could not
            answer (the hits are the best of the others); else None.
    """

    hits: list[QueryHit]
    full_text: dict[str, int] | None = None
    missing_shards: list[str] | None = None


class Point(_WithVector):
    """A stored point.

    Attributes:
        id: the point's id.
        payload: its payload (an empty dict when it has none).
        vector: the vector as written, as a float32 array, when ``with_vectors=True``.
    """

    id: PointId
    payload: dict[str, Any]
    vector: VectorOut = None


class CollectionInfo(_Model):
    """A collection's configuration and state.

    Attributes:
        name: the collection's name.
        uid: its identity, new whenever a collection of that name is made again (after
            a drop) or restored from a snapshot; None from a server that has none.
        dim: the dimension of its vectors.
        metric: ``cosine``, ``dot`` or ``l2``.
        index: the index spec it was created with, every field filled in.
        embedder: the model that embeds its texts or images, or None.
        store_source: whether points keep their text (or image hash) in the payload,
            under ``"_source"``.
        thumbnails: whether image points keep a small JPEG (:meth:`Client.get_thumbnail`).
        full_text: the full-text fields and tokenizer, and the indexing progress
            (``state`` ``"indexing"`` or ``"ready"``, ``indexed`` of ``total`` points), or
            None without full-text fields.
        payload_indexes: the indexed payload fields, ``{path: {"type", "state",
            "indexed", "total"}}``; while a field's ``state`` is ``"indexing"``, filters
            on it read the payloads.
        count: how many points it holds.
        serving: the index serving searches now (family, device, ...).
    """

    name: str
    uid: str | None = None
    dim: int
    metric: str
    index: dict[str, Any]
    embedder: str | None = None
    store_source: bool = False
    thumbnails: bool = False
    full_text: dict[str, Any] | None = None
    payload_indexes: dict[str, Any] = {}
    count: int
    serving: dict[str, Any]


class Snapshot(_Model):
    """A snapshot of a collection, kept by the server.

    Attributes:
        name: the snapshot's name, to download, restore or delete it by.
        size: its size in bytes.
        sha256: the SHA-256 of the snapshot file, in hex.
        created_at: when it was made (UTC).
        points: how many points it holds.
        seq: the store's sequence number it holds: every write up to it, none after.
    """

    name: str
    size: int
    sha256: str
    created_at: datetime
    points: int
    seq: int


class Health(_Model):
    """Whether the server can answer searches.

    Attributes:
        ready: True once every collection is open and its index loaded.
        status: the server's word for its state (``"ready"``, ``"starting"``).
    """

    ready: bool
    status: str
