"""Collections with an embedder: texts and images in, the collection's model makes vectors.

A collection created with ``embedder="minilm"`` records the name of a model from the
engine's allowlist (:class:`~indexer.embedders.EmbedderRegistry`). Its upserts and searches
then take texts or images instead of vectors. The model, and torch with it, is loaded the
first time a collection needs it, so vectors-only collections never import it.

With ``store_source``, each point's payload also keeps what it was embedded from, under the
reserved key ``"_source"``: ``{"text": ...}`` for a text; for an image,
``{"image_sha256": ...}`` (the SHA-256 of the encoded file, as ``sha256sum`` prints it) and,
when the image was given as a file path, ``"image_path"``. Image bytes are never stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.embedders.base import Embedder
from indexer.embedders.images import ImageInput
from indexer.embedders.registry import EmbedderRegistry
from indexer.errors import (
    DimensionMismatch,
    EmbedderNotFound,
    EmbedderUnavailable,
    InvalidEmbedderInput,
    InvalidInput,
    UnknownEmbedder,
)

__all__ = [
    "SOURCE_KEY",
    "embed",
    "embedder_dim",
    "embedder_for",
    "file_sha256",
    "one_input",
    "with_sources",
]

SOURCE_KEY = "_source"
"""The payload key under which a point keeps what it was embedded from."""


def embedder_dim(registry: EmbedderRegistry, name: str, dim: int | None) -> int:
    """The dimension of a new collection embedded by ``name``: the model's own.

    Loads the model (once per registry), since only the loaded model knows its dimension.

    Raises:
        UnknownEmbedder: ``name`` is not in the allowlist.
        DimensionMismatch: ``dim`` is given and is not the model's.
        EmbedderUnavailable: the model could not be loaded.
    """
    try:
        registry.config(name)
    except EmbedderNotFound:
        allowed = ", ".join(repr(n) for n in registry.names()) or "none"
        raise UnknownEmbedder(
            f"no embedder named {name!r} is configured on this server (allowed: {allowed})"
        ) from None
    model_dim = registry.get(name).dim
    if dim is not None and dim != model_dim:
        raise DimensionMismatch(
            f"embedder {name!r} makes vectors of dimension {model_dim}, not {dim}; "
            "leave dim out to take the embedder's"
        )
    return model_dim


def embedder_for(
    registry: EmbedderRegistry, collection: str, name: str | None, dim: int
) -> Embedder:
    """The model that embeds the texts and images of ``collection``.

    Raises:
        InvalidEmbedderInput: the collection has no embedder: it takes vectors only.
        EmbedderUnavailable: the model cannot be loaded, or the server's allowlist no
            longer has it or now maps its name to a model of another dimension.
    """
    if name is None:
        raise InvalidEmbedderInput(
            f"collection {collection!r} has no embedder: send vectors, or create a collection "
            "with an embedder to send texts or images"
        )
    try:
        model = registry.get(name)
    except EmbedderNotFound:
        raise EmbedderUnavailable(
            f"collection {collection!r} is embedded by {name!r}, which this server's "
            "embedder allowlist does not have"
        ) from None
    if model.dim != dim:
        raise EmbedderUnavailable(
            f"collection {collection!r} holds vectors of dimension {dim}, but the embedder "
            f"{name!r} configured on this server makes {model.dim}"
        )
    return model


def one_input(action: str, vectors: object, texts: object, images: object) -> tuple[str, Any]:
    """Which of vectors, texts and images was given, and it; exactly one must be.

    Raises:
        InvalidInput: none or several were given.
    """
    given = [
        (kind, value)
        for kind, value in (("vectors", vectors), ("texts", texts), ("images", images))
        if value is not None
    ]
    if len(given) != 1:
        raise InvalidInput(f"{action} takes exactly one of vectors, texts or images")
    return given[0]


def embed(
    embedder: Embedder, kind: str, inputs: Sequence[str] | Sequence[ImageInput]
) -> npt.NDArray[np.float32]:
    """Embed ``inputs`` of ``kind`` (``"texts"`` or ``"images"``) into unit-norm rows."""
    if kind == "texts":
        return embedder.embed_texts(inputs)  # type: ignore[arg-type]
    return embedder.embed_images(inputs)


def with_sources(
    payloads: Sequence[Any], kind: str, inputs: Sequence[str] | Sequence[ImageInput]
) -> list[Any]:
    """Copies of ``payloads``, each with ``"_source"`` describing its text or image.

    A payload that is not a JSON object is passed on unchanged, for the collection to
    refuse with its usual message.
    """
    out: list[Any] = []
    for payload, item in zip(payloads, inputs, strict=True):
        if payload is None or isinstance(payload, dict):
            source = {"text": item} if kind == "texts" else _image_source(item)
            payload = {**(payload or {}), SOURCE_KEY: source}
        out.append(payload)
    return out


def _image_source(image: ImageInput) -> dict[str, str]:
    if isinstance(image, bytes | bytearray | memoryview):
        return {"image_sha256": hashlib.sha256(image).hexdigest()}
    if isinstance(image, os.PathLike) or (isinstance(image, str) and _is_file(image)):
        path = Path(image)
        return {"image_sha256": file_sha256(path), "image_path": str(path)}
    if isinstance(image, str):
        return {"image_sha256": hashlib.sha256(_base64_bytes(image)).hexdigest()}
    # A decoded image has no file: hash its pixels, so equal pictures still match.
    return {"image_sha256": hashlib.sha256(image.tobytes()).hexdigest()}


def _is_file(text: str) -> bool:
    return len(text) <= 4096 and "\n" not in text and "\x00" not in text and os.path.isfile(text)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex, as ``sha256sum`` prints it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _base64_bytes(text: str) -> bytes:
    payload = text.partition(",")[2] if text.startswith("data:") else text
    compact = "".join(payload.split())
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        # The image itself was decoded already, so this is rare; still, never fail on it.
        return compact.encode()
