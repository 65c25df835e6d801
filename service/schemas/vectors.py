"""Vectors and images in bodies: float arrays or base64, data URLs, and the options that
say how vectors are returned."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal, Self

import numpy as np
from pydantic import (
    ConfigDict,
    Field,
    model_validator,
)

from indexer.errors import InvalidEmbedderInput, InvalidVector
from service.schemas.base import FLOAT32_B64, IMAGE_B64, Body

B64_DESCRIPTION = "the vector as base64 of little-endian float32"

VECTOR_ENCODING = (
    "how returned vectors are sent: `float`, a JSON array in `vector`; `b64`, "
    f"{B64_DESCRIPTION} in `vector_b64` (smaller, exact, and no float formatting or "
    "parsing: the fast path)"
)
VectorEncoding = Literal["float", "b64"]
VectorEncodingOption = Annotated[VectorEncoding, Field(description=VECTOR_ENCODING)]


def decode_vector(text: str) -> np.ndarray:
    """A ``vector_b64`` as a float32 array; :class:`InvalidVector` when it is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidVector("vector_b64 is not valid base64") from None
    if len(raw) % 4:
        raise InvalidVector("vector_b64 must hold little-endian float32 values")
    return np.frombuffer(raw, dtype="<f4")


WITH_VECTORS = "return each point's vector"
WITH_VECTOR = "deprecated: the old name of `with_vectors`, still read; give one of the two"


def with_vectors_of(with_vectors: bool | None, with_vector: bool | None) -> bool:
    """Whether vectors are asked for: ``with_vectors``, or ``with_vector``, its old name
    (a ValueError when both are given and differ)."""
    if with_vectors is not None and with_vector is not None and with_vectors != with_vector:
        raise ValueError("with_vector (the deprecated name) and with_vectors differ")
    return bool(with_vectors if with_vectors is not None else with_vector)


# with_vectors and its old name with_vector, when both are given, agree.
NAMES_AGREE: dict[str, Any] = {
    "anyOf": [
        {"not": {"required": ["with_vectors", "with_vector"]}},
        {"properties": {"with_vectors": {"const": True}, "with_vector": {"const": True}}},
        {"properties": {"with_vectors": {"const": False}, "with_vector": {"const": False}}},
    ]
}


class VectorsOption(Body):
    """Whether to return vectors, and in which form."""

    model_config = ConfigDict(json_schema_extra=NAMES_AGREE)

    with_vectors: bool = Field(default=False, description=WITH_VECTORS)
    with_vector: bool | None = Field(
        default=None, description=WITH_VECTOR, json_schema_extra={"deprecated": True}
    )
    vector_encoding: VectorEncodingOption = "float"

    @model_validator(mode="after")
    def _old_name(self) -> Self:
        if self.with_vector is not None:
            given = self.with_vectors if "with_vectors" in self.model_fields_set else None
            self.with_vectors = with_vectors_of(given, self.with_vector)
        return self


def vector_field(vector: np.ndarray, encoding: VectorEncoding) -> tuple[str, Any]:
    """A returned vector's key and value in the encoding asked for."""
    if encoding == "b64":
        raw = np.asarray(vector, dtype="<f4").tobytes()
        return "vector_b64", base64.b64encode(raw).decode("ascii")
    return "vector", vector


class VectorInput(Body):
    """A vector as a JSON array, or as base64 of little-endian float32 (the fast path)."""

    vector: list[float] | None = Field(default=None, json_schema_extra={"minItems": 1})
    vector_b64: str | None = Field(
        default=None,
        description=B64_DESCRIPTION,
        json_schema_extra={"pattern": FLOAT32_B64, "minLength": 8},
    )

    def array(self) -> np.ndarray:
        if self.vector_b64 is not None:
            return decode_vector(self.vector_b64)
        if self.vector is not None:
            return np.asarray(self.vector, dtype=np.float32)
        raise InvalidVector("no vector given")


class EmbedInput(VectorInput):
    """Or, for a collection with an embedder, a text or an image (base64 of the encoded
    file, or a ``data:image/...;base64,`` URL) that the collection's model embeds."""

    text: str | None = None
    image: str | None = Field(default=None, json_schema_extra={"pattern": IMAGE_B64})

    def given(self) -> list[str]:
        """The input fields that are set."""
        fields = ("vector", "vector_b64", "text", "image")
        return [name for name in fields if getattr(self, name) is not None]

    def image_bytes(self) -> bytes:
        """The encoded image file sent in ``image``."""
        return decode_image(self.image or "")


def decode_image(text: str) -> bytes:
    """The bytes of a base64 image, plain or as a data URL (missing padding is fine)."""
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise InvalidEmbedderInput(
                "a data URL image must look like 'data:image/png;base64,...'"
            )
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        if _looks_like_a_location(text):
            raise InvalidEmbedderInput(
                "image is a path or URL, which the server does not read: images are sent "
                "as base64 of the file's bytes, or as a 'data:image/...;base64,' URL"
            ) from None
        raise InvalidEmbedderInput("image is not valid base64") from None


def _looks_like_a_location(text: str) -> bool:
    """A file path or URL sent where base64 was expected (``./cat.jpg``, ``C:\\x.png``,
    ``https://...``): something with a file extension, a scheme or a path separator."""
    stripped = text.strip()
    return bool(
        re.search(r"\.[A-Za-z0-9]{2,5}$", stripped)
        or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", stripped)
        or stripped.startswith(("~", "./", "../"))
        or "\\" in stripped
    )


def stack(vectors: list[np.ndarray]) -> Any:
    """One [n, dim] matrix, or the ragged list as it is (the engine says what is wrong)."""
    return np.stack(vectors) if len({len(v) for v in vectors}) == 1 else vectors
