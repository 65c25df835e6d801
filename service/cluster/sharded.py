"""The router's view of a cluster: an engine whose collections live on every shard.

:class:`ShardedEngine` and :class:`~service.cluster.collection.ShardedCollection` offer
the methods of :class:`~indexer.Engine` and :class:`~indexer.Collection` that the HTTP
routes call, so the router is the very app that ``vecserve serve`` runs (same routes, API
keys, limits and errors) over another engine. How the shards are called (by id, all at
once, retried, or for a partial answer) is :mod:`service.cluster.fanout`.

A collection exists on every shard; creating one creates it on each (shard 0 last, so it
is listed once every shard has it), dropping one drops it from each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from indexer import errors
from indexer.engine import validate_name
from indexer.errors import NotSupported
from indexer.metric import Metric
from indexer.query import RerankerRegistry
from service.cluster.collection import ShardedCollection
from service.cluster.fanout import ShardLink, Shards, value_of

__all__ = ["ShardedEngine"]


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
        """``retry_s``: how long a read waits for a shard that is restarting before it
        fails with 503; ``rerankers``: the cross-encoders queries may rerank with, run
        here (a query is fused and reranked once, at the router)."""
        self.shards = Shards(links, retry_s)
        self.rerankers = rerankers or RerankerRegistry()
        self._open: dict[str, ShardedCollection] = {}

    def list_collections(self) -> list[str]:
        first = self.shards.links[0]
        names: list[str] = value_of(self.shards.read(first, "engine_call", "list"))
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
        first, *others = self.shards.links
        for link in [*others, first]:
            value_of(link.primary("engine_call", "create", name, config))
        return self.get_collection(name)

    def get_collection(self, name: str) -> ShardedCollection:
        collection = self._open.get(name)
        if collection is None:
            first = self.shards.links[0]
            described = value_of(
                self.shards.read(first, "collection_call", name, "describe", (), {})
            )
            collection = ShardedCollection(self.shards, name, described, self.rerankers)
            self._open[name] = collection
        return collection

    def opened_collection(self, name: str) -> ShardedCollection | None:
        return self._open.get(name)

    def drop_collection(self, name: str) -> None:
        self._open.pop(name, None)
        first, *others = self.shards.links
        value_of(first.primary("engine_call", "drop", name))
        for link in others:
            try:
                value_of(link.primary("engine_call", "drop", name))
            except errors.CollectionNotFound:
                continue

    def close(self) -> None:
        self.shards.close()

    def __getattr__(self, name: str) -> Any:
        if name in {
            "snapshot",
            "list_snapshots",
            "get_snapshot",
            "delete_snapshot",
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
