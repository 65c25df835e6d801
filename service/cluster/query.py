"""Multi-stage and hybrid queries over shards: each stage ranked over the whole collection,
then fused, reranked and paged once, at the router, by the engine's own pipeline
(:func:`indexer.query.run_query`), so that a query means what it means on one node.

A query runs as Elasticsearch's "query then fetch" does:

1. **Query.** Each stage runs on every shard as a one-stage query (the shard's own
   pipeline, with the stage's filter and candidate count), and the router merges the
   shards' lists into the stage's best ``limit`` over the whole collection
   (:func:`indexer.merge.merge_hits`, FAISS's merge). A dense stage by text or image is
   embedded once, on one shard, and sent to every shard as a vector; a stage by point id
   fetches the point's vector from its shard and leaves the point out, as one engine does.
2. **Fusion, rerank, MMR**, offset and limit: :func:`~indexer.query.run_query` over those
   rankings, the same code as on one node (a cross-encoder from the router's allowlist).
3. **Fetch.** Payloads, and vectors for MMR or ``with_vectors``, of the hits that remain,
   from the shards that hold them.

Dense scores are global: a point's distance to a query does not depend on its shard, so a
merged dense ranking is the one engine's (exactly so for exact indexes).

BM25 scores are not quite: FTS5 computes a word's rarity (IDF) and the average length of
a document from the rows of the shard it runs on, so the same point may score a little
differently on a shard than it would in one engine holding every point. Lexical lists are
merged by those shard-local scores, as Elasticsearch merges by default (per-shard IDF,
``query_then_fetch``). Points are spread over shards by a hash of their id, so shards of a
few thousand points see nearly the same statistics and the merged ranking is close to one
engine's; where the shards' statistics are equal (as many points, as many holding each
word, the same total length), it is the same, and rank fusion (``rrf``) then gives one
engine's order exactly. Score fusions (``dbsf``, ``relative_score``) read the scores
themselves, which still differ a little from one engine's (its IDF counts every shard's
points). Exact global statistics would take a first round collecting them
(``dfs_query_then_fetch``), which FTS5's ``bm25()`` cannot take from outside.

There is no snapshot across shards: each shard answers each stage under its own read
lock, so a write that lands between two stages, or between query and fetch, may show in
one and not the other (a point deleted meanwhile comes back without its payload).

With ``partial``, a shard that cannot answer a stage is left out at once (no waiting for
it to restart) and named in the result's ``missing_shards``; the hits are the best of the
other shards. Without it, the query fails with 503 ``ShardUnavailable`` naming the shard.
A stage by point id still needs the shard that holds that point.
"""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer import Hit, Point, PointId
from indexer.errors import PointNotFound, ShardUnavailable
from indexer.merge import merge_hits
from indexer.points import encode_id, validate_id
from indexer.query import QueryPlan, QueryResult, Ranking, run_query
from indexer.query.plan import MAX_LIMIT, DenseQuery, LexicalQuery, Stage

if TYPE_CHECKING:
    from service.cluster.sharded import ShardedCollection

__all__ = ["run_sharded_query"]


def run_sharded_query(collection: ShardedCollection, plan: QueryPlan) -> QueryResult:
    """Run ``plan`` over the shards of ``collection`` (see the module docstring)."""
    source = ShardedSource(collection, partial=plan.partial)
    result = run_query(plan, source, collection.engine.rerankers)
    missing = [link.name for link in collection.engine.links if link.name in source.missing]
    return dataclasses.replace(result, missing_shards=missing or None)


@dataclasses.dataclass(frozen=True, slots=True)
class _PreparedDense:
    query: DenseQuery  # by vector: what every shard is sent
    exclude: str | None  # id key of the point a stage by point id leaves out


class ShardedSource:
    """The :class:`~indexer.query.pipeline.QuerySource` of a sharded collection. Its labels
    number the candidates of this one query (a point's label on its shard means nothing
    on another)."""

    def __init__(self, collection: ShardedCollection, *, partial: bool) -> None:
        self._c = collection
        self._partial = partial
        self.missing: set[str] = set()
        self._ids: list[PointId] = []
        self._labels: dict[str, int] = {}
        self._points: dict[int, Point | None] = {}
        self._full_text: dict[str, int] | None = None

    def reading(self) -> AbstractContextManager[None]:
        return nullcontext()  # each shard holds its own read lock per stage

    def prepare_dense(self, query: DenseQuery) -> _PreparedDense:
        if query.point_id is not None:
            point_id = validate_id(query.point_id)
            found = self._c.get([point_id], with_vectors=True)
            if not found:
                raise PointNotFound(f"point {point_id!r} does not exist")
            vector = found[0].vector
            assert vector is not None
            return _PreparedDense(
                DenseQuery(vector=vector.tolist(), params=query.params), encode_id(point_id)
            )
        if query.vector is not None:
            return _PreparedDense(query, None)
        if query.text is not None:
            vectors = self._c.embed(texts=[query.text])
        else:
            vectors = self._c.embed(images=[query.image])
        return _PreparedDense(DenseQuery(vector=vectors[0].tolist(), params=query.params), None)

    def dense_ranking(
        self, prepared: _PreparedDense, limit: int, filter: dict[str, Any] | None
    ) -> Ranking:
        # One more than asked when the query's own point may come first on its shard.
        asked = min(MAX_LIMIT, limit + (prepared.exclude is not None))
        parts = [
            [h for h in hits if encode_id(h.id) != prepared.exclude]
            for hits in self._on_every_shard(Stage(dense=prepared.query, filter=filter), asked)
        ]
        higher = self._c.metric.higher_is_better
        return self._ranking(merge_hits(parts, limit, higher_is_better=higher))

    def lexical_ranking(
        self, query: LexicalQuery, limit: int, filter: dict[str, Any] | None
    ) -> Ranking:
        parts = self._on_every_shard(Stage(lexical=query, filter=filter), limit)
        return self._ranking(merge_hits(parts, limit, higher_is_better=True))

    def full_text_partial(self) -> dict[str, int] | None:
        return self._full_text

    def vectors(self, labels: np.ndarray) -> np.ndarray:
        self._fetch(labels, with_vectors=True)
        rows = []
        for label in labels.tolist():
            point = self._points[label]
            vector = point.vector if point is not None else None
            rows.append(vector if vector is not None else np.zeros(self._c.dim, np.float32))
        stored = np.asarray(rows, dtype=np.float32).reshape(len(rows), self._c.dim)
        prepared: np.ndarray = self._c.metric.prepare(stored)
        return prepared

    def hits(
        self, labels: np.ndarray, scores: np.ndarray, *, payload: bool, vectors: bool
    ) -> list[Hit]:
        if payload or vectors:
            self._fetch(labels, with_vectors=vectors)
        out = []
        for label, score in zip(labels.tolist(), scores.tolist(), strict=True):
            point = self._points.get(label)
            out.append(
                Hit(
                    self._ids[label],
                    float(score),
                    point.payload if payload and point is not None else None,
                    point.vector if vectors and point is not None else None,
                )
            )
        return out

    # -- the shards' side ----------------------------------------------------------------

    def _on_every_shard(self, stage: Stage, limit: int) -> list[list[Hit]]:
        """The stage's best ``limit`` on each shard that answers, as hits."""
        plan = QueryPlan(prefetch=[stage], limit=limit, with_payload=False)
        results: list[QueryResult]
        if self._partial:
            results, missing = self._c.read_answering("query", plan)
            self.missing.update(missing)
        else:
            results = self._c.read_all("query", plan)
        if stage.lexical is not None and any(r.full_text_partial for r in results):
            self._full_text = self._full_text_progress(results)
        return [[Hit(h.id, h.score) for h in result.hits] for result in results]

    def _full_text_progress(self, results: list[QueryResult]) -> dict[str, int]:
        """How far full-text indexing is over every shard (the shards that are done
        report nothing, so the counts come from their descriptions)."""
        try:
            declared = self._c.full_text
        except ShardUnavailable:  # a partial answer: what the answering shards said
            declared = None
        if declared is not None:
            return {"indexed": declared["indexed"], "total": declared["total"]}
        reported = [r.full_text_partial for r in results if r.full_text_partial]
        return {key: sum(r[key] for r in reported) for key in ("indexed", "total")}

    def _ranking(self, hits: list[Hit]) -> Ranking:
        labels = np.fromiter((self._label(h.id) for h in hits), dtype=np.int64, count=len(hits))
        return Ranking(labels, np.array([h.score for h in hits], dtype=np.float64))

    def _label(self, point_id: PointId) -> int:
        key = encode_id(point_id)
        label = self._labels.get(key)
        if label is None:
            label = self._labels[key] = len(self._ids)
            self._ids.append(point_id)
        return label

    def _fetch(self, labels: np.ndarray, *, with_vectors: bool) -> None:
        """Read the points of ``labels`` from their shards (once each, with vectors when
        asked); a point deleted since its stage ran is None."""
        wanted = [
            label
            for label in labels.tolist()
            if label not in self._points
            or (with_vectors and (p := self._points[label]) is not None and p.vector is None)
        ]
        if not wanted:
            return
        found = {
            encode_id(p.id): p
            for p in self._c.get([self._ids[label] for label in wanted], with_vectors=with_vectors)
        }
        for label in wanted:
            self._points[label] = found.get(encode_id(self._ids[label]))
