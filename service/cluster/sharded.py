"""The router's view of a cluster: an engine and collections whose points live on shards.

:class:`ShardedEngine` and :class:`ShardedCollection` offer the methods of
:class:`~indexer.Engine` and :class:`~indexer.Collection` that the HTTP routes call, so
the router is the very app that ``vecserve serve`` runs (same routes, API keys, limits and
errors) over another engine. Nothing here imports Ray: a :class:`ShardLink` reaches a
shard, and the Ray adapter (:mod:`service.cluster.serving`) provides the links.

- A point lives on the shard its id hashes to (:func:`shard_of`); writes go there and
  are acknowledged once that shard has committed them. A batch that spans shards is
  atomic on each shard, not across them; sending it again is harmless (upserts by id).
- Searches, recommend, count, scroll, get and delete by filter go to every shard; each
  shard applies the filter itself, so k results come back whenever k points match, and
  the router merges the top k with :func:`indexer.merge.merge_hits` (FAISS's merge).
- Multi-stage and hybrid queries rank each stage over every shard, then fuse and rerank
  once, here (:mod:`service.cluster.query`).
- Reads go to a shard's read replicas when it has any. A shard that cannot be reached is
  retried for ``retry_s``; then the request fails with 503 ``ShardUnavailable`` naming
  it: never a silent partial answer. A query that asks for a ``partial`` answer gets the
  other shards' answer instead, with the missing shards named.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexer import CollectionConfig, Hit, Point, PointId, errors
from indexer.engine import validate_name
from indexer.errors import (
    InvalidEmbedderInput,
    InvalidInput,
    NotSupported,
    PointNotFound,
    ShardUnavailable,
    VecserveError,
)
from indexer.merge import merge_hits
from indexer.metric import Metric
from indexer.points import as_vector_batch, encode_id, ensure_lengths, validate_id, validate_ids
from indexer.query import QueryPlan, QueryResult, RerankerRegistry
from service.cluster.query import run_sharded_query
from service.cluster.shard import Reply

__all__ = ["ShardLink", "ShardedCollection", "ShardedEngine", "shard_of"]


class ShardLink(Protocol):
    """How the router reaches one shard. Both raise :class:`ShardUnavailable` when the
    shard (or every replica) cannot answer now."""

    name: str

    def primary(self, method: str, *args: Any) -> Reply:
        """Call the shard itself: writes, and reads that must see every acknowledged write."""

    def read(self, method: str, *args: Any) -> Reply:
        """Call a read replica of the shard, or the shard when it has none."""

    def read_now(self, method: str, *args: Any) -> Reply:
        """As :meth:`read`, for a partial answer: without waiting for a shard that is
        restarting (a short wait at most), so that it is left out instead."""


def shard_of(key: str, shards: int) -> int:
    """The shard that owns the point with id key ``key`` (stable across processes)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards


def _value(reply: Reply) -> Any:
    """A shard's answer, or its error raised again under the same stable name."""
    if reply[0] == "ok":
        return reply[1]
    _, name, message = reply
    error = getattr(errors, name, None)
    if isinstance(error, type) and issubclass(error, VecserveError):
        raise error(message)
    raise VecserveError(message)


class ShardedEngine:
    """An engine over shards: collections exist on every shard, points on one each."""

    path = Path("cluster")
    gpus = 0

    def __init__(
        self,
        links: Sequence[ShardLink],
        *,
        retry_s: float = 10.0,
        rerankers: RerankerRegistry | None = None,
    ) -> None:
        """``rerankers``: the cross-encoders queries may rerank with, run here (a query
        is fused and reranked once, at the router)."""
        self.links = list(links)
        self.retry_s = retry_s
        self.rerankers = rerankers or RerankerRegistry()
        self.pool = ThreadPoolExecutor(max_workers=4 * len(self.links), thread_name_prefix="fan")
        self._open: dict[str, ShardedCollection] = {}

    # -- calls to shards ----------------------------------------------------------------

    def each(self, call: Callable[[int, ShardLink], Reply]) -> list[Any]:
        """``call`` on every shard at once; every answer, in shard order (the first
        error is raised once all have answered)."""
        futures = [self.pool.submit(call, i, link) for i, link in enumerate(self.links)]
        replies = [future.result() for future in futures]
        return [_value(reply) for reply in replies]

    def each_answering(
        self, call: Callable[[int, ShardLink], Reply]
    ) -> tuple[list[Any], list[str]]:
        """``call`` on every shard at once, for a request that accepts a partial answer:
        the answers of the shards that gave one, in shard order, and the names of those
        that were unavailable. Other errors are raised as :meth:`each` raises them; so is
        :class:`ShardUnavailable` when no shard answered."""
        futures = [self.pool.submit(call, i, link) for i, link in enumerate(self.links)]
        answers: list[Any] = []
        missing: list[str] = []
        unavailable: ShardUnavailable | None = None
        for link, future in zip(self.links, futures, strict=True):
            try:
                answers.append(future.result())
            except ShardUnavailable as exc:
                missing.append(link.name)
                unavailable = unavailable or exc
        if unavailable is not None and not answers:
            raise unavailable
        return [_value(reply) for reply in answers], missing

    def read(self, link: ShardLink, method: str, *args: Any) -> Reply:
        """A read, retried while the shard restarts, for at most ``retry_s``."""
        deadline = time.monotonic() + self.retry_s
        for attempt in itertools.count():
            try:
                return link.read(method, *args)
            except ShardUnavailable:
                if time.monotonic() + 0.5 > deadline:
                    raise
                time.sleep(min(0.1 * 2**attempt, 1.0))
        raise AssertionError("unreachable")

    # -- the Engine methods the routes use -----------------------------------------------

    def list_collections(self) -> list[str]:
        names: list[str] = _value(self.read(self.links[0], "engine_call", "list"))
        return names

    def create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: Metric | str = Metric.COSINE,
        index: Any = None,
        *,
        embedder: str | None = None,
        store_source: bool = False,
        thumbnails: bool = False,
        full_text: Any = None,
        payload_indexes: Mapping[str, str] | None = None,
        exist_ok: bool = False,
    ) -> ShardedCollection:
        validate_name(name)
        if not exist_ok and name in self.list_collections():
            raise errors.CollectionExists(f"collection {name!r} already exists")
        config = {
            "dim": dim,
            "metric": metric,
            "index": index,
            "embedder": embedder,
            "store_source": store_source,
            "thumbnails": thumbnails,
            "full_text": full_text,
            "payload_indexes": payload_indexes,
        }
        # Shard 0 last: the collection is listed (from shard 0) once every shard has it.
        for link in [*self.links[1:], self.links[0]]:
            _value(link.primary("engine_call", "create", name, config))
        return self.get_collection(name)

    def get_collection(self, name: str) -> ShardedCollection:
        collection = self._open.get(name)
        if collection is None:
            described = _value(
                self.read(self.links[0], "collection_call", name, "describe", (), {})
            )
            collection = ShardedCollection(self, name, described)
            self._open[name] = collection
        return collection

    def opened_collection(self, name: str) -> ShardedCollection | None:
        return self._open.get(name)

    def drop_collection(self, name: str) -> None:
        self._open.pop(name, None)
        _value(self.links[0].primary("engine_call", "drop", name))
        for link in self.links[1:]:
            try:
                _value(link.primary("engine_call", "drop", name))
            except errors.CollectionNotFound:
                continue

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def __getattr__(self, name: str) -> Any:
        if name in {"snapshot", "list_snapshots", "get_snapshot", "delete_snapshot"} or name in {
            "open_snapshot",
            "snapshot_upload",
            "check_restore_target",
            "restore_snapshot",
        }:
            raise NotSupported(
                "a cluster takes snapshots per shard: snapshot each shard's data folder "
                "with `vecserve serve` tools, or index the data into a new cluster collection"
            )
        raise AttributeError(name)


class ShardedCollection:
    """A collection spread over the shards of a :class:`ShardedEngine`."""

    def __init__(self, engine: ShardedEngine, name: str, described: dict[str, Any]) -> None:
        self.engine = engine
        self.name = name
        self.config = CollectionConfig.model_validate(described["config"])
        self.uid: str = described["uid"]
        self._turn = itertools.count()

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def metric(self) -> Metric:
        return self.config.metric

    # -- fan-out ---------------------------------------------------------------------

    def read_all(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Every shard's answer to a read, in shard order."""
        return self.engine.each(
            lambda _, link: self.engine.read(
                link, "collection_call", self.name, method, args, kwargs
            )
        )

    def read_answering(self, method: str, *args: Any) -> tuple[list[Any], list[str]]:
        """A read for a partial answer: each shard asked once, none waited for while it
        restarts; the answers of those that gave one and the names of the others."""
        return self.engine.each_answering(
            lambda _, link: link.read_now("collection_call", self.name, method, args, {})
        )

    def _write(self, shard: int, method: str, *args: Any, **kwargs: Any) -> Reply:
        link = self.engine.links[shard]
        return link.primary("collection_call", self.name, method, args, kwargs)

    def _by_shard(self, ids: Sequence[PointId]) -> dict[int, list[int]]:
        """Positions of ``ids`` grouped by the shard that owns each."""
        groups: dict[int, list[int]] = {}
        shards = len(self.engine.links)
        for position, point_id in enumerate(ids):
            groups.setdefault(shard_of(encode_id(point_id), shards), []).append(position)
        return groups

    def _write_groups(
        self, groups: dict[int, list[int]], call: Callable[[int, list[int]], Reply]
    ) -> list[Any]:
        futures = {
            s: self.engine.pool.submit(call, s, positions) for s, positions in groups.items()
        }
        replies = [futures[s].result() for s in sorted(futures)]
        return [_value(reply) for reply in replies]

    # -- the Collection methods the routes use ---------------------------------------

    @property
    def index_info(self) -> dict[str, Any]:
        """Shard 0's index summary, with every shard's size, write sequence and replicas."""
        described = self._read_all_primary("describe")
        info = dict(described[0]["serving"])
        info["size"] = sum(d["serving"]["size"] for d in described)
        info["shards"] = [
            {
                "shard": link.name,
                "points": d["count"],
                "seq": d["seq"],
                "family": d["serving"]["family"],
                "device": d["serving"]["device"],
                "replicas": d["replicas"],
            }
            for link, d in zip(self.engine.links, described, strict=True)
        ]
        return info

    def _read_all_primary(self, method: str) -> list[Any]:
        return self.engine.each(
            lambda _, link: link.primary("collection_call", self.name, method, (), {})
        )

    def count(self, filter: dict[str, Any] | None = None) -> int:
        return int(sum(self.read_all("count", filter)))

    def upsert(
        self,
        ids: Sequence[PointId],
        vectors: Any = None,
        payloads: Sequence[dict[str, Any] | None] | None = None,
        *,
        texts: Sequence[str] | None = None,
        images: Sequence[Any] | None = None,
        store_source: bool | None = None,
    ) -> int:
        checked = validate_ids(ids)
        given = [g for g in (vectors, texts, images) if g is not None]
        if len(given) != 1:
            raise InvalidInput("upsert takes exactly one of vectors, texts or images")
        if vectors is not None:
            vectors = as_vector_batch(vectors, self.dim)
            ensure_lengths("vectors", vectors, len(checked))
        for what, value in (("texts", texts), ("images", images), ("payloads", payloads)):
            if value is not None:
                ensure_lengths(what, value, len(checked))

        def send(shard: int, positions: list[int]) -> Reply:
            def part(values: Any) -> Any:
                if values is None:
                    return None
                if isinstance(values, np.ndarray):
                    return values[positions]
                return [values[p] for p in positions]

            return self._write(
                shard,
                "upsert",
                [checked[p] for p in positions],
                part(vectors),
                part(payloads),
                texts=part(texts),
                images=part(images),
                store_source=store_source,
            )

        return int(sum(self._write_groups(self._by_shard(checked), send)))

    def delete(
        self, ids: Sequence[PointId] | None = None, *, filter: dict[str, Any] | None = None
    ) -> int:
        if (ids is None) == (filter is None):
            raise InvalidInput("delete takes either ids or a filter")
        if filter is not None:
            return int(sum(self.engine.each(lambda s, _: self._write(s, "delete", filter=filter))))
        checked = validate_ids(ids or [])
        return int(
            sum(
                self._write_groups(
                    self._by_shard(checked),
                    lambda s, positions: self._write(s, "delete", [checked[p] for p in positions]),
                )
            )
        )

    def get(self, ids: Sequence[PointId], *, with_vectors: bool = True) -> list[Point]:
        checked = validate_ids(ids, unique=False)
        groups = self._by_shard(checked)

        def fetch(shard: int, positions: list[int]) -> Reply:
            link = self.engine.links[shard]
            return self.engine.read(
                link,
                "collection_call",
                self.name,
                "get",
                ([checked[p] for p in positions],),
                {"with_vectors": with_vectors},
            )

        found: dict[str, Point] = {}
        for points in self._write_groups(groups, fetch):
            found.update((encode_id(p.id), p) for p in points)
        return [found[key] for key in map(encode_id, checked) if key in found]

    def thumbnail(self, id: PointId) -> bytes:
        """The point's thumbnail, from the shard that owns it."""
        link = self.engine.links[shard_of(encode_id(validate_id(id)), len(self.engine.links))]
        thumbnail: bytes = _value(
            self.engine.read(link, "collection_call", self.name, "thumbnail", (id,), {})
        )
        return thumbnail

    def scroll(
        self,
        limit: int = 100,
        cursor: str | None = None,
        *,
        filter: dict[str, Any] | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[Point], str | None]:
        pages = self.read_all("scroll", limit, cursor, filter=filter, with_vectors=with_vectors)
        merged = sorted(
            ((encode_id(p.id), p) for points, _ in pages for p in points), key=lambda kp: kp[0]
        )
        more = len(merged) > limit or any(next_cursor is not None for _, next_cursor in pages)
        kept = merged[:limit]
        return [p for _, p in kept], (kept[-1][0] if more and kept else None)

    def search(
        self,
        queries: Any = None,
        k: int = 10,
        *,
        texts: Sequence[str] | None = None,
        images: Sequence[Any] | None = None,
        filter: dict[str, Any] | None = None,
        params: Any = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> list[list[Hit]]:
        if texts is not None or images is not None:
            queries = self.embed(texts=texts, images=images)
        vectors = as_vector_batch(queries, self.dim)
        per_shard = self.read_all(
            "search",
            vectors,
            k,
            filter=filter,
            params=params,
            with_payload=with_payload,
            with_vectors=with_vectors,
        )
        higher = self.metric.higher_is_better
        return [
            merge_hits([shard[q] for shard in per_shard], k, higher_is_better=higher)
            for q in range(len(vectors))
        ]

    def recommend(
        self,
        positive: Sequence[Any],
        negative: Sequence[Any] = (),
        k: int = 10,
        *,
        strategy: str = "average",
        filter: dict[str, Any] | None = None,
        params: Any = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> list[Hit]:
        """As :meth:`Collection.recommend`: examples given by id are fetched from their
        shards and sent to every shard as vectors; the example points are then left out."""
        example_ids = [
            validate_id(int(e) if isinstance(e, np.integer) else e)
            for e in (*positive, *negative)
            if isinstance(e, str | int | np.integer) and not isinstance(e, bool)
        ]
        stored = {encode_id(p.id): p.vector for p in self.get(example_ids, with_vectors=True)}

        def as_vectors(examples: Sequence[Any]) -> list[Any]:
            out = []
            for example in examples:
                if isinstance(example, str | int | np.integer) and not isinstance(example, bool):
                    key = encode_id(
                        validate_id(int(example) if isinstance(example, np.integer) else example)
                    )
                    if key not in stored:
                        raise PointNotFound(f"example point {example!r} does not exist")
                    out.append(stored[key])
                else:
                    out.append(example)
            return out

        excluded = set(stored)
        per_shard = self.read_all(
            "recommend",
            as_vectors(positive),
            as_vectors(negative),
            min(k + len(excluded), 10_000),
            strategy=strategy,
            filter=filter,
            params=params,
            with_payload=with_payload,
            with_vectors=with_vectors,
        )
        kept = [[h for h in hits if encode_id(h.id) not in excluded] for hits in per_shard]
        higher = self.metric.higher_is_better or strategy == "best_score"
        return merge_hits(kept, k, higher_is_better=higher)

    def embed(
        self, *, texts: Sequence[str] | None = None, images: Sequence[Any] | None = None
    ) -> np.ndarray:
        """Vectors by the collection's embedder, on one shard (taking turns; the next one
        when a shard is unavailable, as every shard holds the model)."""
        return self.embed_on_any(texts, images, wait=True)

    def embed_on_any(
        self, texts: Sequence[str] | None, images: Sequence[Any] | None, *, wait: bool
    ) -> np.ndarray:
        """:meth:`embed`; ``wait=False`` for a partial answer: a shard that is restarting
        is passed over after a short wait at most (:meth:`ShardLink.read_now`), and
        :class:`ShardUnavailable` is raised when none answers."""
        links = self.engine.links
        first = next(self._turn) % len(links)
        args = (self.name, "embed", (), {"texts": texts, "images": images})
        reply: Reply | None = None
        unavailable: ShardUnavailable | None = None
        for link in links[first:] + links[:first]:
            try:
                reply = (link.read if wait else link.read_now)("collection_call", *args)
                break
            except ShardUnavailable as exc:
                unavailable = exc
        if reply is None:
            if not wait and unavailable is not None:
                raise unavailable
            # None answers now: wait for the first to come back.
            reply = self.engine.read(links[first], "collection_call", *args)
        vectors: np.ndarray = _value(reply)
        return vectors

    @property
    def embedder(self) -> RemoteEmbedder:
        if self.config.embedder is None:
            raise InvalidEmbedderInput(
                f"collection {self.name!r} has no embedder: send vectors, or create a "
                "collection with an embedder to send texts or images"
            )
        return RemoteEmbedder(self)

    @property
    def full_text(self) -> dict[str, Any] | None:
        """The full-text declaration, with every shard's indexing progress added up."""
        return _full_text_of(self._read_all_primary("describe"))

    def full_text_answering(self) -> dict[str, Any] | None:
        """:attr:`full_text` over the shards that answer now, for a partial answer (a
        shard that is restarting is left out after a short wait at most)."""
        described, _ = self.read_answering("describe")
        return _full_text_of(described)

    def set_full_text(self, full_text: Any) -> None:
        """Declare (or drop, with None) the full-text fields on every shard."""
        self.engine.each(lambda s, _: self._write(s, "set_full_text", full_text))

    @property
    def payload_indexes(self) -> dict[str, dict[str, Any]]:
        """The indexed payload fields, with every shard's progress added up."""
        described = self._read_all_primary("describe")
        fields: dict[str, dict[str, Any]] = {}
        for shard in described:
            for path, status in shard.get("payload_indexes", {}).items():
                field = fields.setdefault(path, {**status, "indexed": 0, "total": 0})
                field["indexed"] += status["indexed"]
                field["total"] += status["total"]
                if status["state"] != "ready":
                    field["state"] = status["state"]
        return fields

    def create_payload_index(self, field: str, type: str) -> None:
        """Index a payload field on every shard."""
        self.engine.each(lambda s, _: self._write(s, "create_payload_index", field, type))

    def drop_payload_index(self, field: str) -> None:
        """Stop indexing a payload field on every shard."""
        self.engine.each(lambda s, _: self._write(s, "drop_payload_index", field))

    def query(self, plan: QueryPlan | dict[str, Any]) -> QueryResult:
        """As :meth:`Collection.query`: each stage ranked over every shard, then fused,
        reranked and paged at the router; see :mod:`service.cluster.query`."""
        return run_sharded_query(self, QueryPlan.parse(plan))

    def optimize(self) -> None:
        self.engine.each(lambda s, _: self._write(s, "optimize"))


class RemoteEmbedder:
    """The collection's embedder as the micro-batcher uses it, run on a shard."""

    def __init__(self, collection: ShardedCollection) -> None:
        self._collection = collection

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._collection.embed(texts=list(texts))

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        return self._collection.embed(images=list(images))


def _full_text_of(described: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The full-text declaration in shards' descriptions, their progress added up."""
    declared: list[dict[str, Any]] = [d["full_text"] for d in described if d["full_text"]]
    if not declared:
        return None
    total = dict(declared[0])
    total["indexed"] = sum(d["indexed"] for d in declared)
    total["total"] = sum(d["total"] for d in declared)
    ready = all(d["state"] == "ready" for d in declared)
    total["state"] = "ready" if ready else "indexing"
    return total
