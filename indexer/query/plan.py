"""The query pipeline as data: prefetch stages -> fusion -> optional rerank -> limit/offset.

One model serves the engine, the HTTP body and the SDK, which send it as JSON::

    {"prefetch": [{"dense": {"text": "red running shoes"}, "limit": 100},
                  {"lexical": {"text": "red running shoes"}, "limit": 100}],
     "fusion": {"method": "rrf", "k": 60},
     "rerank": {"mmr": {"lambda": 0.7}},
     "filter": {"in_stock": true}, "limit": 10, "offset": 0, "explain": true}

A plain search is the one-stage case. ``filter`` holds on every stage, in addition to each
stage's own. Each stage fetches ``limit`` candidates (by default, and at least,
``offset + limit`` of the query, so that k results come back whenever k points match).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, model_validator

from indexer.errors import InvalidQuery, validated, validation_message
from indexer.json_schema import exactly_one_of, given
from indexer.points import INTEGER_ID_SCHEMA, STRING_ID_SCHEMA, PointId
from indexer.query.fusion import RRF_K, FusionMethod
from indexer.query.lexical import MatchMode
from indexer.query.mmr import DEFAULT_LAMBDA
from indexer.spec import SearchParams

MAX_LIMIT = 10_000
MAX_STAGES = 8
DEFAULT_STAGE_LIMIT = 100
MAX_QUERY_TEXT = 100_000  # characters


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _OneOf(_Model):
    """A model that takes exactly one of the fields ``one_of``; ``one_of_error`` says so
    otherwise. Its schema says so too (``exactly_one_of``, in each model's config)."""

    one_of: ClassVar[tuple[str, ...]]
    one_of_error: ClassVar[str]

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if sum(getattr(self, name) is not None for name in self.one_of) != 1:
            raise ValueError(self.one_of_error)
        return self


class DenseQuery(_OneOf):
    """Nearest neighbours of one query: a vector, a text or image (embedded by the
    collection's embedder; an image as a path, URL-free bytes or base64 per the caller),
    or a stored point's vector (the point itself is left out of the results)."""

    one_of = ("vector", "text", "image", "point_id")
    one_of_error = "a dense stage takes exactly one of vector, text, image, point_id"
    model_config = ConfigDict(json_schema_extra=exactly_one_of(*one_of))

    vector: list[float] | None = None
    text: str | None = Field(default=None, max_length=MAX_QUERY_TEXT)
    image: Any = None
    point_id: (
        Annotated[PointId, WithJsonSchema({"anyOf": [STRING_ID_SCHEMA, INTEGER_ID_SCHEMA]})] | None
    ) = None
    params: SearchParams | None = None


class LexicalQuery(_Model):
    """BM25 over the collection's full-text fields. See :mod:`indexer.query.lexical` for
    the match modes; the words are never FTS5 syntax unless ``match`` is ``fts5``."""

    text: str = Field(max_length=MAX_QUERY_TEXT)
    match: MatchMode = "any"


# A filter object (the filter language: indexer.filters); an empty one is refused
# (InvalidFilter) when the query runs, which the schema says so that generated clients
# never send it.
QueryFilter = Annotated[dict[str, Any], WithJsonSchema({"type": "object", "minProperties": 1})]


class Stage(_OneOf):
    """One prefetch stage: exactly one of ``dense`` or ``lexical``, with its own filter,
    candidate count and weight in fusion."""

    one_of = ("dense", "lexical")
    one_of_error = "a stage is either dense or lexical"
    model_config = ConfigDict(json_schema_extra=exactly_one_of(*one_of))

    dense: DenseQuery | None = None
    lexical: LexicalQuery | None = None
    filter: QueryFilter | None = None
    limit: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    weight: float = Field(default=1.0, ge=0, le=1000)

    @property
    def kind(self) -> Literal["dense", "lexical"]:
        return "dense" if self.dense is not None else "lexical"


class Fusion(_Model):
    """How stage rankings combine; see :mod:`indexer.query.fusion`. ``alpha`` (for any
    method) weighs dense stages ``alpha`` and lexical ones ``1 - alpha`` instead of the
    stages' weights.

    The default, ``relative_score`` with equal weights, beat both dense and BM25 alone on
    bench/hybrid.py's WordNet retrieval (R@10 0.573 against 0.470 and 0.510; RRF at k=60:
    0.524), and on smaller samples of it, where RRF at k=60 fell below dense alone: RRF
    ignores how far apart scores are, so a weak stage's votes cost a strong one more."""

    method: FusionMethod = "relative_score"
    k: float = Field(default=RRF_K, gt=0, le=100_000)
    alpha: float | None = Field(default=None, ge=0, le=1)


class CrossEncoderRerank(_Model):
    """Score (query, document) pairs with a cross-encoder from the server's allowlist.
    The document is the text at ``field`` in each payload (default: the text kept by
    ``store_source``); the query is ``query``, or the text of the first stage that has one."""

    model: str
    query: str | None = Field(default=None, max_length=MAX_QUERY_TEXT)
    field: str = "_source.text"


class MmrRerank(_Model):
    """Maximal marginal relevance over the candidates' stored vectors; see
    :mod:`indexer.query.mmr`."""

    lambda_: float = Field(default=DEFAULT_LAMBDA, ge=0, le=1, alias="lambda")


class Rerank(_OneOf):
    """Reorder the best ``candidates`` fused hits: exactly one of the two."""

    one_of = ("cross_encoder", "mmr")
    one_of_error = "a rerank is either cross_encoder or mmr"
    model_config = ConfigDict(json_schema_extra=exactly_one_of(*one_of))

    cross_encoder: CrossEncoderRerank | None = None
    mmr: MmrRerank | None = None
    candidates: int = Field(default=50, ge=1, le=1000)


# A cross-encoder compares documents with a text: its own query, or a stage's.
_RERANK_HAS_A_TEXT: dict[str, Any] = {
    "anyOf": [
        {"not": given("rerank", given("cross_encoder"))},
        given("rerank", given("cross_encoder", given("query"))),
        {
            "properties": {
                "prefetch": {
                    "contains": {"anyOf": [given("lexical"), given("dense", given("text"))]}
                }
            }
        },
    ]
}


class QueryPlan(_Model):
    """A whole query; see the module docstring."""

    model_config = ConfigDict(json_schema_extra=_RERANK_HAS_A_TEXT)

    prefetch: list[Stage] = Field(min_length=1, max_length=MAX_STAGES)
    fusion: Fusion = Fusion()
    rerank: Rerank | None = None
    filter: QueryFilter | None = None
    limit: int = Field(default=10, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=MAX_LIMIT)
    with_payload: bool = True
    with_vectors: bool = False
    explain: bool = False
    partial: bool = Field(
        default=False,
        description="on a cluster router: when a shard cannot answer, answer from the"
        " shards that can and name the others in `missing_shards` (else 503"
        " ShardUnavailable); one engine holds all its points and always answers in full",
    )

    @classmethod
    def parse(cls, value: object) -> QueryPlan:
        """A plan from a plan or its JSON-like dict; else :class:`InvalidQuery`."""
        return validated(cls, value, InvalidQuery, "query")

    def stage_limit(self, stage: Stage) -> int:
        """Candidates a stage fetches: its limit, but never fewer than the query returns
        (and the rerank reorders)."""
        wanted = self.offset + self.limit
        if self.rerank is not None:
            wanted = max(wanted, self.rerank.candidates)
        return min(MAX_LIMIT, max(stage.limit or DEFAULT_STAGE_LIMIT, wanted))

    def stage_filter(self, stage: Stage) -> dict[str, Any] | None:
        """The stage's filter and the query's, both holding."""
        if self.filter is None or stage.filter is None:
            return stage.filter if self.filter is None else self.filter
        return {"$and": [self.filter, stage.filter]}

    def weights(self) -> list[float]:
        alpha = self.fusion.alpha
        if alpha is None:
            return [s.weight for s in self.prefetch]
        return [alpha if s.kind == "dense" else 1 - alpha for s in self.prefetch]

    def query_text(self) -> str | None:
        """The text a cross-encoder compares documents with."""
        cross_encoder = self.rerank.cross_encoder if self.rerank is not None else None
        if cross_encoder is not None and cross_encoder.query is not None:
            return cross_encoder.query
        for stage in self.prefetch:
            text = (
                stage.lexical.text if stage.lexical else stage.dense.text if stage.dense else None
            )
            if text is not None:
                return text
        return None


def invalid_query(exc: ValidationError) -> InvalidQuery:
    """The :class:`InvalidQuery` for a part of a query that did not validate."""
    return InvalidQuery(validation_message(exc, "query"))


class HybridShortcut(_Model):
    """The common hybrid case on a plain search: the search's dense query plus a lexical
    stage on ``text`` (by default the search's own text), fused by the default fusion, or
    by relative score with ``alpha`` (1 = dense only, 0 = lexical only) when it is given."""

    text: str | None = Field(default=None, max_length=MAX_QUERY_TEXT)
    alpha: float | None = Field(default=None, ge=0, le=1)
    match: MatchMode = "any"


def hybrid_plan(
    dense: DenseQuery,
    shortcut: HybridShortcut,
    k: int,
    *,
    filter: dict[str, Any] | None = None,
    with_payload: bool = True,
    with_vectors: bool = False,
) -> QueryPlan:
    """The plan a search with a ``hybrid`` shortcut stands for."""
    text = shortcut.text if shortcut.text is not None else dense.text
    if text is None:
        raise InvalidQuery("hybrid needs a text: give hybrid.text (or search by text)")
    fusion = (
        Fusion()
        if shortcut.alpha is None
        else Fusion(method="relative_score", alpha=shortcut.alpha)
    )
    return QueryPlan(
        prefetch=[Stage(dense=dense), Stage(lexical=LexicalQuery(text=text, match=shortcut.match))],
        fusion=fusion,
        filter=filter,
        limit=k,
        with_payload=with_payload,
        with_vectors=with_vectors,
    )
