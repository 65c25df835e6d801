"""A collection spread over a cluster's shards, as the router sees it.

:class:`ShardedCollection` offers the methods of :class:`~indexer.Collection` that the
HTTP routes call:

- Writes go to the shard that owns each id and are acknowledged once that shard has
  committed them. A batch that spans shards is atomic on each shard, not across them;
  sending it again is harmless (upserts by id).
- Searches, recommend, count, scroll, get and delete by filter go to every shard; each
  shard applies the filter itself, so k results come back whenever k points match, and
  the router merges the top k with :func:`indexer.merge.merge_hits` (FAISS's merge).
- Multi-stage and hybrid queries rank each stage over every shard, then fuse and rerank
  once, here (:mod:`service.cluster.query`).
- Reads go to a shard's read replicas when it has any, and wait for a shard that is
  restarting, or fail with 503 ``ShardUnavailable`` naming it; a query that asks for a
  ``partial`` answer gets the other shards' answer instead, the missing shards named
  (:mod:`service.cluster.fanout`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from indexer import CollectionConfig, Hit, Point, PointId
from indexer.embedders.inputs import one_input
from indexer.errors import InvalidEmbedderInput, InvalidInput, PointNotFound
from indexer.merge import merge_hits
from indexer.metric import Metric
from indexer.points import as_vector_batch, encode_id, ensure_lengths, validate_id, validate_ids
from indexer.query import QueryPlan, QueryResult, RerankerRegistry
from service.cluster import status
from service.cluster.fanout import Shards, value_of
from service.cluster.query import run_sharded_query
from service.cluster.shard import Reply

__all__ = ["ShardedCollection"]


class ShardedCollection:
    """A collection spread over the shards of a
    :class:`~service.cluster.sharded.ShardedEngine`."""

    def __init__(
        self,
        shards: Shards,
        name: str,
        described: dict[str, Any],
        rerankers: RerankerRegistry,
    ) -> None:
        """``described``: shard 0's description of the collection; ``rerankers``: the
        cross-encoders a query may rerank with (at the router)."""
        self.shards = shards
        self.name = name
        self.config = CollectionConfig.model_validate(described["config"])
        self.uid: str = described["uid"]
        self.rerankers = rerankers
        self._turn = itertools.count()  # the shard that embeds next

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def metric(self) -> Metric:
        return self.config.metric

    # -- calls to shards ---------------------------------------------------------------

    def read_all(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Every shard's answer to a read, in shard order."""
        return self.shards.each(
            lambda _, link: self.shards.read(
                link, "collection_call", self.name, method, args, kwargs
            )
        )

    def read_answering(self, method: str, *args: Any) -> tuple[list[Any], list[str]]:
        """A read for a partial answer: each shard asked once, none waited for while it
        restarts; the answers of those that gave one and the names of the others."""
        return self.shards.each_answering(
            lambda _, link: link.read_now("collection_call", self.name, method, args, {})
        )

    def _write(self, shard: int, method: str, *args: Any, **kwargs: Any) -> Reply:
        link = self.shards.links[shard]
        return link.primary("collection_call", self.name, method, args, kwargs)

    def _write_all(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Every shard's answer to a write, in shard order."""
        return self.shards.each(lambda s, _: self._write(s, method, *args, **kwargs))

    # -- the Collection methods the routes use ---------------------------------------

    @property
    def index_info(self) -> dict[str, Any]:
        """Shard 0's index summary, with every shard's size, write sequence and replicas."""
        return status.index_info(self.shards.links, self._read_all_primary("describe"))

    def _read_all_primary(self, method: str) -> list[Any]:
        return self.shards.each(
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
        one_input("upsert", vectors, texts, images)
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

        return int(sum(self.shards.each_group(self.shards.by_owner(checked), send)))

    def delete(
        self, ids: Sequence[PointId] | None = None, *, filter: dict[str, Any] | None = None
    ) -> int:
        if (ids is None) == (filter is None):
            raise InvalidInput("delete takes either ids or a filter")
        if filter is not None:
            return int(sum(self._write_all("delete", filter=filter)))
        checked = validate_ids(ids or [])
        return int(
            sum(
                self.shards.each_group(
                    self.shards.by_owner(checked),
                    lambda s, positions: self._write(s, "delete", [checked[p] for p in positions]),
                )
            )
        )

    def get(self, ids: Sequence[PointId], *, with_vectors: bool = True) -> list[Point]:
        checked = validate_ids(ids, unique=False)
        groups = self.shards.by_owner(checked)

        def fetch(shard: int, positions: list[int]) -> Reply:
            link = self.shards.links[shard]
            return self.shards.read(
                link,
                "collection_call",
                self.name,
                "get",
                ([checked[p] for p in positions],),
                {"with_vectors": with_vectors},
            )

        found: dict[str, Point] = {}
        for points in self.shards.each_group(groups, fetch):
            found.update((encode_id(p.id), p) for p in points)
        return [found[key] for key in map(encode_id, checked) if key in found]

    def thumbnail(self, id: PointId) -> bytes:
        """The point's thumbnail, from the shard that owns it."""
        link = self.shards.owner(encode_id(validate_id(id)))
        thumbnail: bytes = value_of(
            self.shards.read(link, "collection_call", self.name, "thumbnail", (id,), {})
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
        example_ids = [i for i in map(_example_id, (*positive, *negative)) if i is not None]
        stored = {encode_id(p.id): p.vector for p in self.get(example_ids, with_vectors=True)}

        def as_vectors(examples: Sequence[Any]) -> list[Any]:
            out = []
            for example in examples:
                point_id = _example_id(example)
                if point_id is None:
                    out.append(example)
                elif (key := encode_id(point_id)) in stored:
                    out.append(stored[key])
                else:
                    raise PointNotFound(f"example point {example!r} does not exist")
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
        """:meth:`embed`; ``wait=False`` for a partial answer (see :meth:`Shards.read_any`)."""
        args = (self.name, "embed", (), {"texts": texts, "images": images})
        reply = self.shards.read_any(next(self._turn), "collection_call", *args, wait=wait)
        vectors: np.ndarray = value_of(reply)
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
        return status.full_text(self._read_all_primary("describe"))

    def full_text_answering(self) -> dict[str, Any] | None:
        """:attr:`full_text` over the shards that answer now, for a partial answer (a
        shard that is restarting is left out after a short wait at most)."""
        described, _ = self.read_answering("describe")
        return status.full_text(described)

    def set_full_text(self, full_text: Any) -> None:
        """Declare (or drop, with None) the full-text fields on every shard."""
        self._write_all("set_full_text", full_text)

    @property
    def payload_indexes(self) -> dict[str, dict[str, Any]]:
        """The indexed payload fields, with every shard's progress added up."""
        return status.payload_indexes(self._read_all_primary("describe"))

    def create_payload_index(self, field: str, type: str) -> None:
        """Index a payload field on every shard."""
        self._write_all("create_payload_index", field, type)

    def drop_payload_index(self, field: str) -> None:
        """Stop indexing a payload field on every shard."""
        self._write_all("drop_payload_index", field)

    def query(self, plan: QueryPlan | dict[str, Any]) -> QueryResult:
        """As :meth:`Collection.query`: each stage ranked over every shard, then fused,
        reranked and paged at the router; see :mod:`service.cluster.query`."""
        return run_sharded_query(self, QueryPlan.parse(plan))

    def optimize(self) -> None:
        self._write_all("optimize")


class RemoteEmbedder:
    """The collection's embedder as the micro-batcher uses it, run on a shard."""

    def __init__(self, collection: ShardedCollection) -> None:
        self._collection = collection

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._collection.embed(texts=list(texts))

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        return self._collection.embed(images=list(images))


def _example_id(example: Any) -> PointId | None:
    """The id of a recommend example given by id (validated), or None for a vector."""
    if isinstance(example, bool) or not isinstance(example, str | int | np.integer):
        return None
    return validate_id(int(example) if isinstance(example, np.integer) else example)
