"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal, Self

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    model_validator,
)

from indexer.errors import InvalidEmbedderInput, InvalidK, InvalidVector
from indexer.query.plan import QueryPlan
from indexer.spec import IndexSpec, SearchParams
from service.limits import check_dim, check_filter_depth

PointIdModel = StrictStr | StrictInt
# The server's limits (max_filter_depth, max_dim) are checked as bodies are parsed.
Filter = Annotated[dict[str, Any], AfterValidator(check_filter_depth)]


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


class VectorsOption(Body):
    """Whether to return vectors, and in which form."""

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

    vector: list[float] | None = None
    vector_b64: str | None = Field(default=None, description=_B64_DESCRIPTION)

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
    image: str | None = None

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
        raise InvalidEmbedderInput("image is not valid base64") from None


def stack(vectors: list[np.ndarray]) -> Any:
    """One [n, dim] matrix, or the ragged list as it is (the engine says what is wrong)."""
    return np.stack(vectors) if len({len(v) for v in vectors}) == 1 else vectors


# -- collections ---------------------------------------------------------------------------


class CreateCollection(Body):
    """``embedder``: a name from the server's allowlist; the collection then takes texts
    or images too, and ``dim`` (the model's) may be left out. ``store_source``: points keep
    their text, or image hash, in the payload under ``"_source"`` by default."""

    dim: Annotated[int, Field(ge=1, le=65_536), AfterValidator(check_dim)] | None = None
    metric: Literal["cosine", "dot", "l2"] = "cosine"
    index: IndexSpec | Literal["auto", "flat", "ivf_flat", "ivf_pq", "hnsw"] = "auto"
    embedder: str | None = None
    store_source: bool = False
    full_text: FullTextDeclaration | None = None


class FullTextField(Body):
    """A payload field by dotted path (``title``, ``brand.name``, ``_source.text``) and its
    weight in BM25 (a match in a field of weight 2 counts twice)."""

    path: str
    weight: float = 1.0


class FullTextDeclaration(Body):
    """The full-text fields, and one tokenizer for all: ``unicode61`` (any language, case
    and accents folded), ``porter`` (English stemming on top) or ``trigram`` (substrings,
    some typos, and CJK text, which unicode61 keeps as whole runs)."""

    fields: list[FullTextField | str] = Field(min_length=1)
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
    id: PointIdModel
    payload: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_vector(self) -> PointIn:
        if len(self.given()) != 1:
            raise ValueError("give exactly one of vector, vector_b64, text or image")
        return self


class Upsert(Body):
    """Points of one kind: all vectors, all texts or all images. ``store_source``
    overrides the collection's setting for this request."""

    points: list[PointIn] = Field(min_length=1)
    store_source: bool | None = None


class Upserted(BaseModel):
    upserted: int


class GetPoints(VectorsOption):
    ids: list[PointIdModel] = Field(min_length=1)


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
    ids: list[PointIdModel] | None = Field(default=None, min_length=1)
    filter: Filter | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> DeletePoints:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of ids or filter")
        return self


class Deleted(BaseModel):
    deleted: int


class Scroll(VectorsOption):
    limit: int = Field(default=100, ge=1, le=10_000)
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

    id: PointIdModel | None = None
    k: int = Field(default=10, ge=1)
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
    vector_b64: str = Field(description=_B64_DESCRIPTION)

    def array(self) -> np.ndarray:
        return decode_vector(self.vector_b64)


class TextExample(Body):
    text: str


class ImageExample(Body):
    image: str = Field(description="base64 of the encoded image file, or a data URL")


Example = PointIdModel | list[float] | VectorExample | TextExample | ImageExample


class Recommend(VectorsOption):
    """Examples are point ids, vectors (JSON arrays, or ``{"vector_b64": ...}``), or
    ``{"text": ...}`` and ``{"image": ...}`` for a collection with an embedder."""

    positive: list[Example] = Field(min_length=1)
    negative: list[Example] = Field(default_factory=list)
    strategy: Literal["average", "best_score"] = "average"
    k: int = Field(default=10, ge=1)
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
