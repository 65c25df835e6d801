"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal, Self

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    model_validator,
)

from indexer.errors import InvalidEmbedderInput, InvalidK, InvalidVector
from indexer.points import MAX_ID_LENGTH
from indexer.query.plan import QueryPlan
from indexer.spec import IndexSpec, SearchParams
from service.filter_schema import FILTER_SCHEMA
from service.limits import check_dim, check_filter_depth


def _whole(value: object) -> object:
    """A JSON number with no fractional part (``10.0``) is that integer, as JSON Schema's
    ``integer`` says; strict validation would refuse it as a float."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


# The int64 bounds, inside by what a double can tell apart (the document's numbers are
# doubles, and 2**63 - 1 as a double is 2**63, past the bound).
_INT64_MAX_AS_FLOAT = 2**63 - 2048
# An integer, written ``10`` or ``10.0``.
WholeNumber = Annotated[int, BeforeValidator(_whole)]
# The schemas say what the engine checks after parsing (InvalidId), so that clients
# generated from them send only ids the server takes.
PointIdModel = (
    Annotated[
        StrictStr, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH})
    ]
    | Annotated[
        StrictInt,
        BeforeValidator(_whole),
        WithJsonSchema(
            {"type": "integer", "minimum": -_INT64_MAX_AS_FLOAT, "maximum": _INT64_MAX_AS_FLOAT}
        ),
    ]
)
# The server's limits (max_filter_depth, max_dim) are checked as bodies are parsed.
Filter = Annotated[
    dict[str, Any], AfterValidator(check_filter_depth), WithJsonSchema(FILTER_SCHEMA)
]
# Base64 of little-endian float32 values: a whole number of 4-byte values.
_FLOAT32_B64 = r"^(?:[A-Za-z0-9+/]{16})*(?:[A-Za-z0-9+/]{6}==|[A-Za-z0-9+/]{11}=)?$"
# Base64 (padding optional), or a data URL of it.
_IMAGE_B64 = (
    r"^(?:data:[^,]*;base64,)?(?:[A-Za-z0-9+/]{4})*"
    r"(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$"
)


def given(name: str) -> dict[str, Any]:
    """JSON Schema for "the field is given, and not null"."""
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


def exactly_one_of(*names: str) -> dict[str, Any]:
    return {"oneOf": [given(name) for name in names]}


class Body(BaseModel):
    # Strict: a JSON body means what it says (`0` is not `false`, `"5"` is not `5`).
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorBody(BaseModel):
    """Every error: a stable name (the SDK raises the exception of that name), a message
    for people, and the request id (also in the ``X-Request-ID`` header)."""

    error: str = Field(examples=["CollectionNotFound"])
    message: str
    request_id: str | None


# -- vectors -------------------------------------------------------------------------------

_B64_DESCRIPTION = "the vector as base64 of little-endian float32"

VECTOR_ENCODING = (
    "how returned vectors are sent: `float`, a JSON array in `vector`; `b64`, "
    f"{_B64_DESCRIPTION} in `vector_b64` (smaller, exact, and no float formatting or "
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
_NAMES_AGREE: dict[str, Any] = {
    "anyOf": [
        {"not": {"required": ["with_vectors", "with_vector"]}},
        {"properties": {"with_vectors": {"const": True}, "with_vector": {"const": True}}},
        {"properties": {"with_vectors": {"const": False}, "with_vector": {"const": False}}},
    ]
}


class VectorsOption(Body):
    """Whether to return vectors, and in which form."""

    model_config = ConfigDict(json_schema_extra=_NAMES_AGREE)

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
        description=_B64_DESCRIPTION,
        json_schema_extra={"pattern": _FLOAT32_B64, "minLength": 8},
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
    image: str | None = Field(default=None, json_schema_extra={"pattern": _IMAGE_B64})

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


# -- collections ---------------------------------------------------------------------------


class CreateCollection(Body):
    """``embedder``: a name from the server's allowlist; the collection then takes texts
    or images too, and ``dim`` (the model's) may be left out. ``store_source``: points keep
    their text, or image hash, in the payload under ``"_source"`` by default.
    ``thumbnails``: image points keep a JPEG of at most 128 px a side, served by
    ``GET /collections/{name}/points/{id}/thumbnail`` (an image embedder only)."""

    model_config = ConfigDict(json_schema_extra=exactly_one_of("dim", "embedder"))

    dim: (
        Annotated[
            int,
            BeforeValidator(_whole),
            Field(ge=1, le=65_536),
            AfterValidator(check_dim),
            # (Field's bounds come out as "ge" and "le" after the validators.)
            WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 65_536}),
        ]
        | None
    ) = None
    metric: Literal["cosine", "dot", "l2"] = "cosine"
    index: IndexSpec | Literal["auto", "flat", "ivf_flat", "ivf_pq", "hnsw"] = "auto"
    embedder: str | None = None
    store_source: bool = False
    thumbnails: bool = False
    full_text: FullTextDeclaration | None = None


class FullTextField(Body):
    """A payload field by dotted path (``title``, ``brand.name``, ``_source.text``) and its
    weight in BM25 (a match in a field of weight 2 counts twice)."""

    path: str = Field(min_length=1)
    weight: float = 1.0


class FullTextDeclaration(Body):
    """The full-text fields, and one tokenizer for all: ``unicode61`` (any language, case
    and accents folded), ``porter`` (English stemming on top) or ``trigram`` (substrings,
    some typos, and CJK text, which unicode61 keeps as whole runs)."""

    fields: list[FullTextField | Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    tokenizer: Literal["unicode61", "porter", "trigram"] = "unicode61"

    def declaration(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class CollectionInfo(BaseModel):
    name: str
    uid: str = Field(
        description="the collection's identity: new whenever a collection of this name is "
        "made again (after a drop) or restored from a snapshot"
    )
    dim: int
    metric: str
    index: dict[str, Any]
    embedder: str | None
    store_source: bool
    thumbnails: bool = Field(description="image points keep a small JPEG thumbnail")
    full_text: dict[str, Any] | None = Field(
        default=None,
        description="the full-text fields and tokenizer, and the indexing progress: state"
        " `indexing` (lexical search covers the `indexed` points so far) or `ready`",
    )
    count: int
    serving: dict[str, Any] = Field(description="the index serving now: family, device, ...")


class CollectionList(BaseModel):
    collections: list[str]


# -- points ----------------------------------------------------------------------------------


class PointIn(EmbedInput):
    model_config = ConfigDict(
        json_schema_extra=exactly_one_of("vector", "vector_b64", "text", "image")
    )

    id: PointIdModel
    payload: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_vector(self) -> PointIn:
        if len(self.given()) != 1:
            raise ValueError("give exactly one of vector, vector_b64, text or image")
        return self


# All the points of an upsert are given by vectors, or all by texts, or all by images.
_ONE_KIND: dict[str, Any] = {
    "anyOf": [
        {"items": {"anyOf": [given("vector"), given("vector_b64")]}},
        {"items": given("text")},
        {"items": given("image")},
    ]
}


class Upsert(Body):
    """Points of one kind: all vectors, all texts or all images. ``store_source``
    overrides the collection's setting for this request."""

    points: list[PointIn] = Field(min_length=1, json_schema_extra=_ONE_KIND)
    store_source: bool | None = None


class Upserted(BaseModel):
    upserted: int


class GetPoints(VectorsOption):
    ids: list[PointIdModel] = Field(min_length=1, json_schema_extra={"uniqueItems": True})


class PointOut(BaseModel):
    """``vector`` or ``vector_b64`` (as ``vector_encoding`` asks) when vectors are asked
    for."""

    id: PointIdModel
    payload: dict[str, Any]
    vector: list[float] | None = None
    vector_b64: str | None = Field(default=None, description=_B64_DESCRIPTION)


class Points(BaseModel):
    points: list[PointOut]


class DeletePoints(Body):
    model_config = ConfigDict(json_schema_extra=exactly_one_of("ids", "filter"))

    ids: list[PointIdModel] | None = Field(
        default=None, min_length=1, json_schema_extra={"uniqueItems": True}
    )
    filter: Filter | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> DeletePoints:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of ids or filter")
        return self


class Deleted(BaseModel):
    deleted: int


class Scroll(VectorsOption):
    limit: WholeNumber = Field(default=100, ge=1, le=10_000)
    cursor: str | None = None
    filter: Filter | None = None


class ScrollPage(Points):
    next_cursor: str | None


# -- search ----------------------------------------------------------------------------------


class Hybrid(Body):
    text: str | None = None
    alpha: float | None = Field(default=None, ge=0, le=1)
    match: Literal["any", "all", "phrase", "prefix"] = "any"


class Search(EmbedInput, VectorsOption):
    """Search by a vector, a text or an image, or by the id of a stored point (which is
    then left out)."""

    model_config = ConfigDict(
        json_schema_extra=exactly_one_of("vector", "vector_b64", "text", "image", "id")
        | _NAMES_AGREE
    )

    id: PointIdModel | None = None
    k: WholeNumber = Field(default=10, ge=1)
    filter: Filter | None = None
    params: SearchParams | None = None
    with_payload: bool = True
    hybrid: Hybrid | None = Field(
        default=None,
        description="also search the full-text fields for `hybrid.text` (default: `text`)"
        " and fuse both rankings (default fusion, or relative score with `alpha`: 1 ="
        " dense only, 0 = lexical only)",
    )

    @model_validator(mode="after")
    def _one_query(self) -> Search:
        if len(self.given()) + (self.id is not None) != 1:
            raise ValueError("give exactly one of vector, vector_b64, text, image or id")
        return self


class SearchBatch(Body):
    searches: list[Search] = Field(min_length=1)


class HitOut(BaseModel):
    """``vector`` or ``vector_b64`` (as ``vector_encoding`` asks) when vectors are asked
    for."""

    id: PointIdModel
    score: float
    payload: dict[str, Any] | None = None
    vector: list[float] | None = None
    vector_b64: str | None = Field(default=None, description=_B64_DESCRIPTION)


class Hits(BaseModel):
    hits: list[HitOut]


class BatchHits(BaseModel):
    results: list[Hits]


class QueryBody(QueryPlan):
    """A query pipeline; see ``POST /collections/{name}/query``. In a dense stage,
    ``image`` is base64 of an encoded image file (or a ``data:`` URL)."""

    def plan(self, max_k: int) -> QueryPlan:
        """The engine's plan, with images decoded; bounded by the server's k."""
        if self.offset + self.limit > max_k:
            raise InvalidK(f"offset + limit is {self.offset + self.limit}; at most {max_k}")
        stages = []
        for stage in self.prefetch:
            dense = stage.dense
            if dense is not None and dense.image is not None:
                if not isinstance(dense.image, str):
                    raise InvalidEmbedderInput("image is base64 of an image file")
                dense = dense.model_copy(update={"image": decode_image(dense.image)})
                stage = stage.model_copy(update={"dense": dense})
            stages.append(stage)
        return QueryPlan.model_validate(
            {**self.model_dump(exclude={"prefetch"}, by_alias=True), "prefetch": stages}
        )


class QueryHitOut(HitOut):
    explain: dict[str, Any] | None = Field(
        default=None,
        description="with `explain`: each stage's rank (from 1) and score for this hit"
        " (absent where the stage did not find it), the fused score and any rerank score",
    )


class QueryHits(BaseModel):
    hits: list[QueryHitOut]
    full_text: dict[str, int] | None = Field(
        default=None,
        description="while full-text indexing is under way: the points lexical stages"
        " covered (`indexed`) of `total`",
    )


class VectorExample(Body):
    vector_b64: str = Field(
        description=_B64_DESCRIPTION, json_schema_extra={"pattern": _FLOAT32_B64, "minLength": 8}
    )

    def array(self) -> np.ndarray:
        return decode_vector(self.vector_b64)


class TextExample(Body):
    text: str


class ImageExample(Body):
    image: str = Field(
        description="base64 of the encoded image file, or a data URL",
        json_schema_extra={"pattern": _IMAGE_B64},
    )


Example = PointIdModel | list[float] | VectorExample | TextExample | ImageExample


class Recommend(VectorsOption):
    """Examples are point ids, vectors (JSON arrays, or ``{"vector_b64": ...}``), or
    ``{"text": ...}`` and ``{"image": ...}`` for a collection with an embedder."""

    positive: list[Example] = Field(min_length=1)
    negative: list[Example] = Field(default_factory=list)
    strategy: Literal["average", "best_score"] = "average"
    k: WholeNumber = Field(default=10, ge=1)
    filter: Filter | None = None
    params: SearchParams | None = None
    with_payload: bool = True


# -- snapshots -------------------------------------------------------------------------------


class SnapshotOut(BaseModel):
    name: str
    size: int = Field(description="bytes of the tar file")
    sha256: str = Field(description="SHA-256 of the tar file, hex")
    created_at: str = Field(description="UTC, ISO 8601")
    points: int
    seq: int = Field(description="the store sequence number the snapshot holds")


class SnapshotList(BaseModel):
    snapshots: list[SnapshotOut]
