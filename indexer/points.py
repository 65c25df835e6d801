"""Point ids, points and search hits: the values the engine hands to its callers."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sized
from dataclasses import dataclass
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
import orjson

try:  # np.einsum without its Python wrapper (array-function dispatch), which costs more
    from numpy._core.multiarray import c_einsum  # than the sum itself for one vector
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import c_einsum  # type: ignore[no-redef]

from indexer.errors import (
    DimensionMismatch,
    DuplicateIds,
    EmptyBatch,
    InvalidId,
    InvalidInput,
    InvalidVector,
)

PointId = str | int
"""A point's id is the user's: a string or an integer, and ``"7"`` is not ``7``."""

MAX_ID_LENGTH = 512
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# JSON Schema of the ids validate_id takes. The integer bounds are inside int64 by what a
# double can tell apart (a JSON number may be read as one, and 2**63 - 1 as a double is
# 2**63, past the bound).
STRING_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}
INTEGER_ID_SCHEMA = {"type": "integer", "minimum": -(2**63 - 2048), "maximum": 2**63 - 2048}


def validate_id(point_id: object) -> PointId:
    """Return ``point_id`` if it is a usable id (a numpy integer as an int), else raise
    :class:`InvalidId`."""
    if isinstance(point_id, np.integer):
        point_id = int(point_id)
    if isinstance(point_id, bool) or not isinstance(point_id, str | int):
        raise InvalidId(f"a point id is a string or an integer, not {type(point_id).__name__}")
    if isinstance(point_id, int):
        if not _INT64_MIN <= point_id <= _INT64_MAX:
            raise InvalidId(f"integer id {point_id} is outside the signed 64-bit range")
    elif not 0 < len(point_id) <= MAX_ID_LENGTH:
        raise InvalidId(f"a string id has 1 to {MAX_ID_LENGTH} characters, got {len(point_id)}")
    elif not point_id.isascii():
        try:
            point_id.encode()
        except UnicodeEncodeError:  # a lone surrogate: neither JSON nor SQLite can store it
            raise InvalidId(f"string id {point_id!r} is not valid Unicode text") from None
    return point_id


def validate_ids(ids: Iterable[object], *, unique: bool = True) -> list[PointId]:
    """Validate a batch of ids: not empty, each usable, and (by default) no repeats."""
    checked = [validate_id(i) for i in ids]
    if not checked:
        raise EmptyBatch("the batch has no ids")
    if unique:
        keys = [encode_id(i) for i in checked]
        if len(set(keys)) != len(keys):
            counts = Counter(keys)
            dups = [i for i, key in zip(checked, keys, strict=True) if counts[key] > 1]
            raise DuplicateIds(f"ids appear more than once in one batch: {dups[:5]!r}")
    return checked


def encode_id(point_id: PointId) -> str:
    """The id's key in the store: its JSON text, which keeps ``"7"`` and ``7`` apart."""
    return orjson.dumps(point_id).decode()


def decode_id(key: str) -> PointId:
    value: PointId = orjson.loads(key)
    return value


@dataclass(frozen=True, slots=True)
class Point:
    """A stored point. ``vector`` is the vector as it was written (never normalised)."""

    id: PointId
    payload: dict[str, Any]
    vector: np.ndarray | None = None


class Hit(NamedTuple):
    """One search result. What ``score`` means depends on the metric; see :class:`Metric`.

    A named tuple: a batched search builds tens of thousands of hits, and a tuple built
    from C (:func:`bare_hits`, :func:`full_hits`) costs a fraction of a class's
    ``__init__``, which is a Python call per hit. So a hit cannot be changed (make another
    with ``hit._replace(...)``), and JSON encoders see a tuple: an array from ``json`` and
    FastAPI's, a TypeError from orjson; ``hit._asdict()`` is the object by field."""

    id: PointId
    score: float
    payload: dict[str, Any] | None = None
    vector: np.ndarray | None = None


def bare_hits(ids: Iterable[PointId], scores: Iterable[float]) -> list[Hit]:
    """Hits of these ids and scores, without payloads or vectors (:func:`full_hits`,
    inline: a single query's few hits cost less than the call)."""
    rows = zip(ids, scores, _NONE, _NONE, strict=False)  # the Nones repeat
    built: list[Hit] = list(map(_new_tuple, repeat(Hit), rows))
    return built


def full_hits(
    ids: Iterable[PointId],
    scores: Iterable[float],
    payloads: Iterable[dict[str, Any] | None],
    vectors: Iterable[np.ndarray | None],
) -> list[Hit]:
    """Hits of these ids, scores, payloads and vectors, built by ``tuple.__new__`` called
    from C: no Python call per hit."""
    rows = zip(ids, scores, payloads, vectors, strict=False)  # payloads, vectors: may repeat
    built: list[Hit] = list(map(_new_tuple, repeat(Hit), rows))
    return built


_new_tuple = tuple.__new__
_NONE = repeat(None)  # never exhausted: shared by every call


def as_vector_batch(vectors: object, dim: int) -> np.ndarray:
    """Turn a vector or a batch of vectors into a C-contiguous float32 [n, dim] array.

    Raises :class:`InvalidVector` for a wrong shape, NaN or infinity, and
    :class:`DimensionMismatch` for the wrong dimension.
    """
    return vector_batch_and_squares(vectors, dim)[0]


def vector_batch_and_squares(vectors: object, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`as_vector_batch`, with each row's sum of squares (float32, and possibly
    infinite where a finite row overflows), which the check computes anyway."""
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidVector(f"vectors must be numbers: {exc}") from None
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise InvalidVector(f"expected one vector or a 2-d batch, got {array.ndim} dimensions")
    if array.shape[0] == 0:
        raise EmptyBatch("the batch has no vectors")
    if array.shape[1] != dim:
        raise DimensionMismatch(f"expected vectors of dimension {dim}, got {array.shape[1]}")
    # A row's sum of squares carries any NaN or infinity in it, in one pass that costs less
    # than an isfinite mask, and so does their total; only when it is not finite (or
    # overflowed) are rows checked.
    squares = c_einsum("ij,ij->i", array, array)
    if not math.isfinite(squares[0] if len(squares) == 1 else np.add.reduce(squares)):
        finite = np.isfinite(array).all(axis=1)
        if not finite.all():
            raise InvalidVector(f"vector {int(np.flatnonzero(~finite)[0])} holds NaN or infinity")
    return np.ascontiguousarray(array), squares


def single_vector_and_squares(vector: object, dim: int) -> tuple[np.ndarray, float] | None:
    """One finite vector of dimension ``dim`` as a C-contiguous float32 array [dim], and its
    sum of squares as :func:`vector_batch_and_squares` gives it (to the bit); None for
    anything else (a batch, another dimension, NaN or infinity, not numbers), which that
    function takes (or refuses). The most common query's way: no reshaping, no checks of a
    batch, one numpy call for the squares."""
    try:
        array = np.asarray(vector, dtype=np.float32, order="C")
    except (TypeError, ValueError):
        return None
    if array.shape != (dim,):
        return None
    squares = float(c_einsum("i,i", array, array))  # the batch's kernel: the same sum
    return (array, squares) if math.isfinite(squares) else None


def ensure_lengths(name: str, values: Sized, expected: int) -> None:
    if len(values) != expected:
        raise InvalidInput(f"got {len(values)} {name} for {expected} ids")
