"""Multi-stage and hybrid queries over shards: each stage ranked over the whole collection,
then fused, reranked and paged once, at the router, by the engine's own pipeline
(:func:`indexer.query.run_query`), so that a query means what it means on one node.

A query runs as Elasticsearch's "query then fetch" does:

1. **Query.** Every shard runs each stage as a one-stage query (the shard's own
   pipeline, with the stage's filter and candidate count), all stages in one call, and
   the router merges the shards' lists into each stage's best ``limit`` over the whole
   collection (:func:`indexer.merge.merge_hits`, FAISS's merge). A dense stage by text or
   image is embedded once, on one shard, and sent to every shard as a vector; a stage by
   point id fetches the point's vector from its shard and leaves the point out, as one
   engine does.
2. **Fusion, rerank, MMR**, offset and limit: :func:`~indexer.query.run_query` over those
   rankings, the same code as on one node (a cross-encoder from the router's allowlist).
3. **Fetch.** Payloads, and vectors for MMR or ``with_vectors``, of the hits that remain,
   from the shards that hold them. Where the stages ask for few candidates (at most
   :data:`PAYLOADS_WITH_STAGES` in all), the shards send their candidates' payloads with
   the stages instead: a few more payloads cost less than a second call to every shard
   (a Ray Serve call is milliseconds), and a query needing no vectors then takes one call
   per shard.

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

With ``partial``, a shard that cannot answer is left out (after a short wait at most: no
waiting for it to restart) and named in the result's ``missing_shards``; the hits are
then what the other shards alone would answer (a shard answers all the stages or none).
Without it, the query fails with 503 ``ShardUnavailable`` naming the shard. A stage by
text or image needs one shard to embed it, and a stage by point id the shard holding it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer import Hit, Point, PointId
from indexer.errors import PointNotFound, ShardUnavailable
from indexer.merge import merge_hits
from indexer.points import encode_id, validate_id
from indexer.query import QueryPlan, QueryResult, Ranking, run_query
from indexer.query.plan import MAX_LIMIT, DenseQuery, LexicalQuery, Stage

if TYPE_CHECKING:
    from service.cluster.collection import ShardedCollection

__all__ = ["run_sharded_query"]

# At most this many candidates over a query's stages, their payloads come with the stages.
PAYLOADS_WITH_STAGES = 200


def run_sharded_query(collection: ShardedCollection, plan: QueryPlan) -> QueryResult:
    """Run ``plan`` over the shards of ``collection`` (see the module docstring)."""
    source = ShardedSource(collection, plan)
    result = run_query(plan, source, collection.rerankers)
    missing = [link.name for link in collection.shards.links if link.name in source.missing]
    return dataclasses.replace(result, missing_shards=missing or None)


@dataclasses.dataclass(frozen=True, slots=True)
class _ShardStage:
    plan: QueryPlan  # the one-stage query every shard runs
    limit: int  # the stage's candidates, once merged
    exclude: str | None  # id key of a point left out (the query's own, by point id)
    higher_is_better: bool  # how the stage's scores order


def _one_stage(stage: Stage, *, with_payload: bool) -> QueryPlan:
    assert stage.limit is not None
    return QueryPlan(prefetch=[stage], limit=stage.limit, with_payload=with_payload)


@dataclasses.dataclass(frozen=True, slots=True)
class _PreparedDense:
    query: DenseQuery  # by vector: what every shard is sent
    exclude: str | None  # id key of the point a stage by point id leaves out


class ShardedSource:
    """The :class:`~indexer.query.pipeline.QuerySource` of a sharded collection. Its labels
    number the candidates of this one query (a point's label on its shard means nothing
    on another).

    The pipeline prepares every dense stage, then takes the stages' rankings in the
    plan's order under :meth:`reading`; that is when every shard is asked for all of
    them at once."""

    def __init__(self, collection: ShardedCollection, plan: QueryPlan) -> None:
        self._c = collection
        self._plan = plan
        self.missing: set[str] = set()
        self._prepared: list[_PreparedDense] = []
        self._rankings: Iterator[Ranking] = iter(())
        self._ids: list[PointId] = []
        self._labels: dict[str, int] = {}
        self._points: dict[int, Point | None] = {}
        # id key -> payload of the candidates the shards sent theirs with.
        self._payloads: dict[str, dict[str, Any]] = {}
        self._full_text: dict[str, int] | None = None

    @contextmanager
    def reading(self) -> Iterator[None]:
        self._rankings = iter(self._ranked_stages())
        yield

    def prepare_dense(self, query: DenseQuery) -> _PreparedDense:
        prepared = self._prepare(query)
        self._prepared.append(prepared)
        return prepared

    def _prepare(self, query: DenseQuery) -> _PreparedDense:
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
        # A partial answer waits for no restarting shard to embed its query.
        wait = not self._plan.partial
        if query.text is not None:
            vectors = self._c.embed_on_any([query.text], None, wait=wait)
        else:
            vectors = self._c.embed_on_any(None, [query.image], wait=wait)
        return _PreparedDense(DenseQuery(vector=vectors[0].tolist(), params=query.params), None)

    def dense_ranking(
        self, prepared: _PreparedDense, limit: int, filter: dict[str, Any] | None
    ) -> Ranking:
        return next(self._rankings)

    def lexical_ranking(
        self, query: LexicalQuery, limit: int, filter: dict[str, Any] | None
    ) -> Ranking:
        return next(self._rankings)

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

    def _ranked_stages(self) -> list[Ranking]:
        """Every stage's ranking over the shards that answer, in the plan's order."""
        stages = self._shard_stages()
        plans = [stage.plan for stage in stages]
        per_shard: list[list[QueryResult]]
        if self._plan.partial:
            per_shard, missing = self._c.read_answering("query_stages", plans)
            self.missing.update(missing)
        else:
            per_shard = self._c.read_all("query_stages", plans)
        for results in per_shard:
            for result in results:
                self._payloads.update(
                    (encode_id(h.id), h.payload) for h in result.hits if h.payload is not None
                )
        lexical = [
            results[s]
            for results in per_shard
            for s, stage in enumerate(stages)
            if stage.plan.prefetch[0].lexical is not None
        ]
        if any(r.full_text_partial for r in lexical):
            self._full_text = self._full_text_progress(lexical)
        rankings = []
        for s, stage in enumerate(stages):
            parts = [
                [Hit(h.id, h.score) for h in results[s].hits if encode_id(h.id) != stage.exclude]
                for results in per_shard
            ]
            merged = merge_hits(parts, stage.limit, higher_is_better=stage.higher_is_better)
            rankings.append(self._ranking(merged))
        return rankings

    def _shard_stages(self) -> list[_ShardStage]:
        plan, prepared = self._plan, iter(self._prepared)
        asked = sum(plan.stage_limit(stage) for stage in plan.prefetch)
        payloads = plan.with_payload and asked <= PAYLOADS_WITH_STAGES
        stages = []
        for stage in plan.prefetch:
            limit, filter = plan.stage_limit(stage), plan.stage_filter(stage)
            if stage.lexical is not None:
                sent = Stage(lexical=stage.lexical, filter=filter, limit=limit)
                stages.append(
                    _ShardStage(_one_stage(sent, with_payload=payloads), limit, None, True)
                )
                continue
            dense = next(prepared)
            # One more when the query's own point may come first on its shard.
            wanted = min(MAX_LIMIT, limit + (dense.exclude is not None))
            sent = Stage(dense=dense.query, filter=filter, limit=wanted)
            higher = self._c.metric.higher_is_better
            one = _one_stage(sent, with_payload=payloads)
            stages.append(_ShardStage(one, limit, dense.exclude, higher))
        return stages

    def _full_text_progress(self, results: list[QueryResult]) -> dict[str, int]:
        """How far full-text indexing is over every shard (the shards that are done
        report nothing, so the counts come from their descriptions)."""
        try:
            # A partial answer's: the answering shards', waiting for no restarting one.
            declared = self._c.full_text_answering() if self._plan.partial else self._c.full_text
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
        if not with_vectors:  # the payloads the shards sent with the stages
            for label in wanted:
                payload = self._payloads.get(encode_id(self._ids[label]))
                if payload is not None:
                    self._points[label] = Point(self._ids[label], payload)
            wanted = [label for label in wanted if label not in self._points]
        if not wanted:
            return
        found = {
            encode_id(p.id): p
            for p in self._c.get([self._ids[label] for label in wanted], with_vectors=with_vectors)
        }
        for label in wanted:
            self._points[label] = found.get(encode_id(self._ids[label]))
