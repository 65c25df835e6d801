"""The types that the public methods take."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Literal, Protocol, TypedDict

import numpy as np
import numpy.typing as npt

PointId = str | int
"""A point's id: the caller's own, a string or an integer."""

Ids = Sequence[PointId] | npt.NDArray[np.integer[Any]]
"""Several ids: a list of strings and integers, or a numpy array of integers."""

Payload = Mapping[str, Any]
"""A point's JSON payload."""

Filter = Mapping[str, Any]
"""A filter over payload fields: ``{"color": "red", "price": {"$lt": 100}}``."""

SearchParams = Mapping[str, Any]
"""Per-search index parameters: ``{"nprobe": 64}``, ``{"ef_search": 128}``, ``{"exact": True}``."""

IndexSpec = str | Mapping[str, Any]
"""An index kind (``"hnsw"``) or a spec (``{"kind": "ivf_pq", "nlist": 1024}``)."""

Metric = Literal["cosine", "dot", "l2"]
Strategy = Literal["average", "best_score"]

Vector = Sequence[float] | npt.NDArray[np.floating[Any]]
"""One vector: a list of floats or a 1-d numpy array."""

Vectors = Sequence[Sequence[float]] | npt.NDArray[np.floating[Any]]
"""Several vectors: a list of lists or a 2-d numpy array, one row per vector."""


class SavableImage(Protocol):
    """Anything with PIL's ``Image.save(fp, format)``, so PIL stays optional."""

    def save(self, fp: IO[bytes], format: str | None = None) -> None: ...


ImageInput = bytes | str | os.PathLike[str] | SavableImage
"""An image: the encoded file's bytes, a path to it, or a PIL image."""


class TextExample(TypedDict):
    """A recommend example given as a text, for a collection with an embedder."""

    text: str


class ImageExample(TypedDict):
    """A recommend example given as an image, for a collection with an embedder."""

    image: ImageInput


Example = PointId | Vector | TextExample | ImageExample
"""A recommend example: a stored point's id, a vector, ``{"text": ...}`` or ``{"image": ...}``."""

ProgressCallback = Callable[[int, int], None]
"""Called as ``on_progress(done, total)`` after each batch of an upsert."""

Tokenizer = Literal["unicode61", "porter", "trigram"]
PayloadFieldType = Literal["keyword", "number"]
"""A full-text tokenizer: ``unicode61`` (any language, case and accents folded), ``porter``
(English stemming on top) or ``trigram`` (substrings, some typos, CJK text)."""

FullText = Mapping[str, Any] | Sequence[str | Mapping[str, Any]]
"""Full-text fields: ``{"fields": [...], "tokenizer": ...}``, or the list of fields alone;
a field is a dotted payload path or ``{"path": ..., "weight": ...}``."""
