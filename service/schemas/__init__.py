"""Request and response bodies of the HTTP API; ``base`` holds their building blocks and
``vectors`` how vectors and images are written in them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from indexer.errors import InvalidEmbedderInput, InvalidK
from indexer.field_index import FieldType
from indexer.fulltext import MAX_FIELDS, MAX_PATH_LENGTH, MAX_WEIGHT, PATH_PATTERN
from indexer.json_schema import exactly_one_of, given
from indexer.payload_index import MAX_FIELDS as MAX_PAYLOAD_FIELDS
from indexer.query.plan import MAX_QUERY_TEXT, QueryPlan
from indexer.spec import IndexSpec, SearchParams
from service.filter_schema import FIELD_PATTERN
from service.limits import check_dim
from service.schemas.base import (
    FLOAT32_B64,
    IMAGE_B64,
    Body,
    ErrorBody,
    Filter,
    PointIdModel,
    WholeNumber,
    whole,
)
from service.schemas.vectors import (
    B64_DESCRIPTION,
    NAMES_AGREE,
    VECTOR_ENCODING,
    WITH_VECTOR,
    WITH_VECTORS,
    EmbedInput,
    VectorEncoding,
    VectorsOption,
    decode_image,
    decode_vector,
    stack,
    vector_field,
    with_vectors_of,
)

__all__ = [
    "VECTOR_ENCODING",
    "WITH_VECTOR",
    "WITH_VECTORS",
    "BatchHits",
    "Body",
    "CollectionInfo",
    "CollectionList",
    "CreateCollection",
    "DeletePoints",
    "Deleted",
    "ErrorBody",
    "Example",
    "FullTextDeclaration",
    "FullTextField",
    "GetPoints",
    "HitOut",
    "Hits",
    "Hybrid",
    "ImageExample",
    "PointIn",
    "PointOut",
    "Points",
    "QueryBody",
    "QueryHitOut",
    "QueryHits",
    "Recommend",
    "Scroll",
    "ScrollPage",
    "Search",
    "SearchBatch",
    "SearchHits",
    "SnapshotList",
    "SnapshotOut",
    "TextExample",
    "Upsert",
    "Upserted",
    "VectorEncoding",
    "VectorExample",
    "WholeNumber",
    "decode_image",
    "stack",
    "vector_field",
    "with_vectors_of",
]


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
            BeforeValidator(whole),
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
    payload_indexes: dict[str, FieldType] | None = Field(
        default=None,
        description="payload fields to index for filters, by dotted path: `keyword` "
        "(strings, booleans) or `number` (integers, floats)",
        # The paths' rules, for clients; the engine checks them (InvalidPayloadIndex).
        json_schema_extra={
            "propertyNames": {"pattern": FIELD_PATTERN},
            "maxProperties": MAX_PAYLOAD_FIELDS,
        },
    )


class PayloadIndexDeclaration(Body):
    """How a payload field is indexed: ``keyword`` (strings and booleans, and arrays of
    them: equality, ``$in``, ``$ne``, ``$nin`` and ranges of strings) or ``number``
    (integers and floats: those and ranges of numbers); either answers ``$exists`` and
    nulls too."""

    type: FieldType


# The engine checks paths and weights (InvalidFullText); the schema says what it takes.
_PATH_SCHEMA: dict[str, Any] = {"pattern": PATH_PATTERN, "maxLength": MAX_PATH_LENGTH}


class FullTextField(Body):
    """A payload field by dotted path (``title``, ``brand.name``, ``_source.text``) and its
    weight in BM25 (a match in a field of weight 2 counts twice)."""

    path: str = Field(min_length=1, json_schema_extra=_PATH_SCHEMA)
    weight: float = Field(
        default=1.0, json_schema_extra={"exclusiveMinimum": 0, "maximum": MAX_WEIGHT}
    )


class FullTextDeclaration(Body):
    """The full-text fields, and one tokenizer for all: ``unicode61`` (any language, case
    and accents folded), ``porter`` (English stemming on top) or ``trigram`` (substrings,
    some typos, and CJK text, which unicode61 keeps as whole runs)."""

    fields: list[
        FullTextField | Annotated[str, Field(min_length=1, json_schema_extra=_PATH_SCHEMA)]
    ] = Field(min_length=1, json_schema_extra={"maxItems": MAX_FIELDS, "uniqueItems": True})
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
    payload_indexes: dict[str, Any] = Field(
        default_factory=dict,
        description="the indexed payload fields: {path: {type, state, indexed, total}}; "
        "while a field's state is `indexing`, filters on it read the payloads",
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
    vector_b64: str | None = Field(default=None, description=B64_DESCRIPTION)


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
    text: str | None = Field(default=None, json_schema_extra={"maxLength": MAX_QUERY_TEXT})
    alpha: float | None = Field(default=None, ge=0, le=1)
    match: Literal["any", "all", "phrase", "prefix"] = "any"


# The hybrid shortcut's lexical side needs a text: its own, or the search's (and the engine
# takes query texts of at most MAX_QUERY_TEXT characters; InvalidQuery otherwise).
_HYBRID_HAS_A_TEXT: dict[str, Any] = {
    "anyOf": [
        {"not": given("hybrid")},
        {
            "properties": {"text": {"maxLength": MAX_QUERY_TEXT}},
            "anyOf": [given("text"), given("hybrid", given("text"))],
        },
    ]
}


class Search(EmbedInput, VectorsOption):
    """Search by a vector, a text or an image, or by the id of a stored point (which is
    then left out)."""

    model_config = ConfigDict(
        json_schema_extra=exactly_one_of("vector", "vector_b64", "text", "image", "id")
        | {"allOf": [NAMES_AGREE, _HYBRID_HAS_A_TEXT]}
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
    partial: bool = Field(
        default=False,
        description="on a cluster router: when a shard cannot answer, answer from the shards"
        " that can and name the others in `missing_shards` (else 503 ShardUnavailable); one"
        " engine holds all its points and always answers in full",
    )

    @model_validator(mode="after")
    def _one_query(self) -> Search:
        if len(self.given()) + (self.id is not None) != 1:
            raise ValueError("give exactly one of vector, vector_b64, text, image or id")
        return self


def _single_only(schema: dict[str, Any]) -> None:
    """The searches of a batch have no ``hybrid`` and no ``partial`` (InvalidQuery: they
    are for single ones)."""
    schema["items"] = {
        "allOf": [
            schema["items"],
            {"not": given("hybrid")},
            {"not": given("partial", {"const": True})},
        ]
    }


class SearchBatch(Body):
    searches: list[Search] = Field(min_length=1, json_schema_extra=_single_only)


class HitOut(BaseModel):
    """``vector`` or ``vector_b64`` (as ``vector_encoding`` asks) when vectors are asked
    for."""

    id: PointIdModel
    score: float
    payload: dict[str, Any] | None = None
    vector: list[float] | None = None
    vector_b64: str | None = Field(default=None, description=B64_DESCRIPTION)


class Hits(BaseModel):
    hits: list[HitOut]


class SearchHits(Hits):
    missing_shards: list[str] | None = Field(
        default=None,
        description="with `partial`, on a cluster router: the shards that could not answer;"
        " the hits are the best of the others",
    )


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
    missing_shards: list[str] | None = Field(
        default=None,
        description="with `partial`, on a cluster router: the shards that could not answer;"
        " the hits are the best of the others",
    )


class VectorExample(Body):
    vector_b64: str = Field(
        description=B64_DESCRIPTION, json_schema_extra={"pattern": FLOAT32_B64, "minLength": 8}
    )

    def array(self) -> np.ndarray:
        return decode_vector(self.vector_b64)


class TextExample(Body):
    text: str


class ImageExample(Body):
    image: str = Field(
        description="base64 of the encoded image file, or a data URL",
        json_schema_extra={"pattern": IMAGE_B64},
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
