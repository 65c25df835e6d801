"""Running a :class:`QueryPlan`: stages, fusion, rerank, then offset and limit.

The pipeline owns the order of the steps; a :class:`QuerySource` (the collection) answers
each stage, reads stored vectors and payloads, and builds hits. Stages, fusion and MMR run
under one read of the collection (``source.reading()``), so they see one state of it; a
cross-encoder, which may take a while, scores the candidates after that read.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from indexer.errors import InvalidQuery
from indexer.points import Hit, PointId
from indexer.query.fusion import Fused, Ranking, fuse
from indexer.query.mmr import mmr_order
from indexer.query.plan import DenseQuery, LexicalQuery, QueryPlan
from indexer.query.rerank import RerankerRegistry


@dataclass(slots=True)
class QueryHit:
    """One result of a query. ``score`` is the last step's: the rerank's if there is one,
    else the fusion's (or, for one stage without fusion weights, that stage's score).
    ``explain`` (on request) holds each stage's rank (from 1) and score for this point
    (absent where the stage did not find it), the fused score, and the rerank's score."""

    id: PointId
    score: float
    payload: dict[str, Any] | None = None
    vector: np.ndarray | None = None
    explain: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class QueryResult:
    hits: list[QueryHit]
    # Lexical stages cover only the points indexed so far while a new full-text
    # declaration is being built: {"indexed": n, "total": m} then, else None.
    full_text_partial: dict[str, int] | None = None
    # A cluster's shards that could not answer a plan that accepted a partial answer (the
    # hits are then the other shards' best); None when every shard answered.
    missing_shards: list[str] | None = None


class QuerySource(Protocol):
    """What the pipeline needs from a collection."""

    def reading(self) -> AbstractContextManager[None]:
        """Hold one state of the collection (its read lock)."""
        ...

    def prepare_dense(self, query: DenseQuery) -> Any:
        """A dense query made ready to search (texts and images embedded): called before
        :meth:`reading`, as embedding may take a while."""
        ...

    def dense_ranking(
        self, prepared: Any, limit: int, filter: dict[str, Any] | None
    ) -> Ranking: ...

    def lexical_ranking(
        self, query: LexicalQuery, limit: int, filter: dict[str, Any] | None
    ) -> Ranking: ...

    def full_text_partial(self) -> dict[str, int] | None: ...

    def vectors(self, labels: np.ndarray) -> np.ndarray:
        """The stored vectors of live labels, in order."""
        ...

    def hits(
        self, labels: np.ndarray, scores: np.ndarray, *, payload: bool, vectors: bool
    ) -> list[Hit]: ...


def run_query(plan: QueryPlan, source: QuerySource, rerankers: RerankerRegistry) -> QueryResult:
    """Run ``plan`` over ``source``."""
    prepared = [
        source.prepare_dense(stage.dense) if stage.dense is not None else None
        for stage in plan.prefetch
    ]
    rerank = plan.rerank
    cross_encoder = rerank.cross_encoder if rerank is not None else None
    query_text = plan.query_text() if cross_encoder is not None else None
    if cross_encoder is not None and query_text is None:
        raise InvalidQuery("a cross-encoder rerank needs a query text: give rerank.query")
    reranker = rerankers.get(cross_encoder.model) if cross_encoder is not None else None
    partial = None
    with source.reading():
        rankings = []
        for stage, ready in zip(plan.prefetch, prepared, strict=True):
            limit, filter = plan.stage_limit(stage), plan.stage_filter(stage)
            if stage.lexical is not None:
                rankings.append(source.lexical_ranking(stage.lexical, limit, filter))
                partial = partial or source.full_text_partial()
            else:
                rankings.append(source.dense_ranking(ready, limit, filter))
        fused = _fused(plan, rankings)
        window = (
            plan.offset + plan.limit
            if rerank is None
            else max(rerank.candidates, plan.offset + plan.limit)
        )
        order = np.arange(min(window, len(fused.labels)))
        final = fused.scores[order]
        if rerank is not None and rerank.mmr is not None:
            picked = order[: rerank.candidates]
            mmr, mmr_scores = mmr_order(
                fused.scores[picked], source.vectors(fused.labels[picked]), rerank.mmr.lambda_
            )
            order, final = picked[mmr], mmr_scores
        need_payload = plan.with_payload or cross_encoder is not None
        hits = source.hits(
            fused.labels[order], final, payload=need_payload, vectors=plan.with_vectors
        )
    if reranker is not None and cross_encoder is not None and query_text is not None:
        documents = [_text_at(h.payload, cross_encoder.field) for h in hits]
        scored = reranker.score(query_text, documents)
        by_score = np.argsort(-scored, kind="stable")
        order, final = order[by_score], scored[by_score].astype(np.float64)
        hits = [hits[i] for i in by_score.tolist()]
    page = slice(plan.offset, plan.offset + plan.limit)
    results = []
    for hit, row, score in zip(hits[page], order[page].tolist(), final[page].tolist(), strict=True):
        explain = _explain(plan, fused, row, score) if plan.explain else None
        payload = hit.payload if plan.with_payload else None
        results.append(QueryHit(hit.id, float(score), payload, hit.vector, explain))
    return QueryResult(results, partial)


def _fused(plan: QueryPlan, rankings: Sequence[Ranking]) -> Fused:
    if len(rankings) == 1 and plan.fusion.alpha is None:
        # One stage: its own scores and order (a plain search), not rank-based ones.
        only = rankings[0]
        n = len(only.labels)
        return Fused(
            only.labels,
            only.scores.astype(np.float64),
            np.arange(1, n + 1, dtype=np.int64)[:, None],
            only.scores.astype(np.float64)[:, None],
        )
    return fuse(rankings, plan.weights(), plan.fusion.method, k=plan.fusion.k)


def _explain(plan: QueryPlan, fused: Fused, row: int, score: float) -> dict[str, Any]:
    stages = []
    for s, stage in enumerate(plan.prefetch):
        rank = int(fused.ranks[row, s])
        entry: dict[str, Any] = {"stage": s, "kind": stage.kind}
        if rank:
            entry.update(rank=rank, score=float(fused.stage_scores[row, s]))
        stages.append(entry)
    explained: dict[str, Any] = {"stages": stages, "fused": float(fused.scores[row])}
    if plan.rerank is not None:
        explained["rerank"] = score
    return explained


def _text_at(payload: dict[str, Any] | None, path: str) -> str:
    """The strings at a dotted path of a payload, joined (what full-text fields index)."""
    value: Any = payload
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return "\n".join(_strings(value))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []
