"""The ``Embedder`` protocol and the pieces every implementation shares.

Nothing here imports torch: the protocol and helpers must stay importable on a server that
only stores vectors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from indexer.embedders.images import ImageInput, load_image
from indexer.errors import InvalidEmbedderInput

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "Device",
    "Embedder",
    "Modality",
    "ModelEmbedder",
    "TokenCounter",
    "check_images",
    "check_texts",
    "decode_images",
    "normalize_rows",
    "unsupported_modality",
]

Modality = Literal["text", "image"]
Device = Literal["auto", "cpu", "cuda"]


@runtime_checkable
class Embedder(Protocol):
    """A loaded model that turns texts and/or images into vectors.

    Every method returns a float32 array of shape ``[n, dim]`` whose rows have unit L2 norm,
    so cosine similarity is a dot product. Inputs are embedded in batches of the
    configured size; an empty input gives an empty ``[0, dim]`` array.
    """

    @property
    def name(self) -> str:
        """The name this embedder has in the server's allowlist."""
        ...

    @property
    def dim(self) -> int:
        """The length of every vector this embedder returns."""
        ...

    @property
    def modalities(self) -> frozenset[str]:
        """What it can embed: a non-empty subset of ``{"text", "image"}``."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts.

        Raises:
            InvalidEmbedderInput: this embedder has no text modality, or an item is not a str.
        """
        ...

    def embed_images(self, images: Sequence[ImageInput]) -> npt.NDArray[np.float32]:
        """Embed images given as anything :func:`~indexer.embedders.images.load_image` takes.

        Raises:
            InvalidEmbedderInput: this embedder has no image modality, or an image cannot be
                decoded.
        """
        ...


BatchItem = TypeVar("BatchItem")


class ModelEmbedder:
    """What the embedders over a loaded model share: the name, vector length and
    modalities they answer with, their batch size, and ``_lock``, which lets one batch at
    a time through the model (each subclass says why its model needs it)."""

    def __init__(self, name: str, dim: int, modalities: frozenset[str], batch_size: int) -> None:
        self._name = name
        self._dim = dim
        self._modalities = modalities
        self._batch_size = batch_size
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The name this embedder has in the allowlist."""
        return self._name

    @property
    def dim(self) -> int:
        """The vector length."""
        return self._dim

    @property
    def modalities(self) -> frozenset[str]:
        """What it embeds: ``{"text"}``, ``{"image"}`` or both."""
        return self._modalities

    def _in_batches(
        self, items: list[BatchItem], embed: Callable[[list[BatchItem], int], npt.NDArray[Any]]
    ) -> npt.NDArray[np.float32]:
        """``embed(batch, offset)`` over the items, batch by batch, as unit-norm float32
        rows ``[len(items), dim]``."""
        parts = [np.empty((0, self._dim), dtype=np.float32)]
        for start in range(0, len(items), self._batch_size):
            parts.append(embed(items[start : start + self._batch_size], start))
        return normalize_rows(np.concatenate(parts))


@runtime_checkable
class TokenCounter(Protocol):
    """An embedder that can tell how many tokens of each text it embeds (after
    truncation), as OpenAI-compatible clients are told in ``usage``."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """The number of tokens embedded of each text, in order."""
        ...


def unsupported_modality(name: str, modality: Modality, supported: frozenset[str]) -> Exception:
    """The error an embedder raises when asked to embed a modality it lacks."""
    can = " and ".join(sorted(supported))
    return InvalidEmbedderInput(f"embedder {name!r} cannot embed {modality}s; it embeds {can}s")


def check_texts(texts: Sequence[str]) -> list[str]:
    """Return ``texts`` as a list after checking that it is a sequence of strings.

    A bare string is refused rather than embedded character by character.
    """
    if isinstance(texts, str):
        raise InvalidEmbedderInput("texts must be a list of strings, not a single string")
    checked = list(texts)
    for position, text in enumerate(checked):
        if not isinstance(text, str):
            raise InvalidEmbedderInput(f"text {position} is a {type(text).__name__}, not a string")
    return checked


def check_images(images: Sequence[ImageInput]) -> list[ImageInput]:
    """Return ``images`` as a list, refusing a bare string or bytes object (not a list)."""
    if isinstance(images, str | bytes | bytearray | memoryview):
        raise InvalidEmbedderInput("images must be a list of images, not a single image")
    return list(images)


def decode_images(images: Sequence[ImageInput], offset: int = 0) -> list[Image.Image]:
    """Decode ``images`` with :func:`load_image`; an error names the failing position.

    ``offset`` is the position of ``images[0]`` in the caller's whole input.
    """
    decoded = []
    for position, image in enumerate(images, start=offset):
        try:
            decoded.append(load_image(image))
        except InvalidEmbedderInput as exc:
            raise InvalidEmbedderInput(f"image {position}: {exc.message}") from exc
    return decoded


def normalize_rows(vectors: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Return ``vectors`` as float32 with every row scaled to unit L2 norm.

    The norm is taken in float32 even when the model ran in fp16, whose range is too small
    for sums of squares of large activations.
    """
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    # An all-zero row stays zero instead of becoming NaN.
    return np.ascontiguousarray(array / np.maximum(norms, np.float32(1e-12)))
