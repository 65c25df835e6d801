"""One shard of a cluster collection: a data folder of its own, served by a plain Engine.

A shard is what a single-node server is, minus HTTP: its own SQLite store of record and
FAISS indexes (on its GPU when it has one), so every durability promise of the engine
holds per shard. The Ray adapter (:mod:`service.cluster.serving`) runs one per Serve
deployment; nothing here imports Ray, so a shard is tested like any engine.

Every call answers a :data:`Reply`: ``("ok", value)`` or ``("error", name, message)``
with one of vecserve's stable error names. The router raises the same error again, so a
client of the cluster sees what a client of ``vecserve serve`` would.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from indexer import Collection, Engine, VecserveError
from indexer.embedders import EmbedderConfig, EmbedderRegistry
from service.warmup import warm_embedders

Reply = tuple[Any, ...]

# The collection methods a router may call on a shard; reads may go to a read replica.
READS = frozenset(
    {
        "count",
        "get",
        "thumbnail",
        "scroll",
        "search",
        "recommend",
        "query_stages",
        "embed",
        "describe",
    }
)
WRITES = frozenset(
    {"upsert", "delete", "optimize", "set_full_text", "create_payload_index", "drop_payload_index"}
)
# Rows per reply when a read replica catches up.
CHANGES_LIMIT = 4096


def ok(value: Any) -> Reply:
    return ("ok", value)


def failed(error: VecserveError) -> Reply:
    return ("error", error.name, error.message)


class ShardServer:
    """The engine of one shard, answering the router's calls with :data:`Reply` tuples."""

    def __init__(
        self, folder: str, embedders: list[dict[str, Any]], device: str, *, warm: bool = False
    ) -> None:
        """``warm``: load the embedders this shard's collections use now, as
        ``vecserve serve`` does before it is ready (shards embed; the router does not)."""
        configs = [EmbedderConfig.model_validate(c) for c in embedders]
        self.engine = Engine(
            Path(folder),
            device="cpu" if device == "cpu" else "auto",
            embedders=EmbedderRegistry(configs),
        )
        if warm:
            warm_embedders(self.engine)
        # replica id -> collection -> (seq applied, when): how far each read replica lags.
        self._replicas: dict[str, dict[str, tuple[int, float]]] = {}

    def engine_call(self, method: str, *args: Any) -> Reply:
        """``list``, ``create`` (name, config as JSON) or ``drop`` (name)."""
        try:
            if method == "list":
                return ok(self.engine.list_collections())
            if method == "create":
                name, config = args
                collection = create_from(self.engine, name, config, exist_ok=True)
                return ok(collection.config.model_dump(mode="json"))
            if method == "drop":
                self.engine.drop_collection(args[0])
                return ok(None)
        except VecserveError as exc:
            return failed(exc)
        raise ValueError(f"unknown engine call {method!r}")

    def collection_call(
        self, name: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Reply:
        """Call ``method`` of collection ``name`` (one of :data:`READS` or :data:`WRITES`)."""
        if method not in READS | WRITES:
            raise ValueError(f"unknown collection call {method!r}")
        try:
            collection = self.engine.get_collection(name)
            if method == "describe":
                return ok(self._describe(name))
            return ok(call_collection(collection, method, args, kwargs))
        except VecserveError as exc:
            return failed(exc)

    def _describe(self, name: str) -> dict[str, Any]:
        collection = self.engine.get_collection(name)
        seq = collection.store.seq
        now = time.time()
        replicas = [
            {
                "replica": replica,
                "lag_writes": max(0, seq - applied[0]),
                "synced_seconds_ago": now - applied[1],
            }
            for replica, applied in ((r, c[name]) for r, c in self._replicas.items() if name in c)
        ]
        return {
            "config": collection.config.model_dump(mode="json"),
            "uid": collection.uid,
            "count": collection.count(),
            "seq": seq,
            "serving": collection.index_info,
            "full_text": collection.full_text,
            "payload_indexes": collection.payload_indexes,
            "replicas": replicas,
        }

    # -- what read replicas follow ------------------------------------------------------

    def changes(self, name: str, after_label: int, replica: str, applied_seq: int) -> Reply:
        """Rows written after ``after_label`` (labels grow with every write, so these are
        the inserts and updates since), with the collection's uid, seq and count; the
        replica also reports the seq it has applied so far."""
        try:
            collection = self.engine.get_collection(name)
            self._replicas.setdefault(replica, {})[name] = (applied_seq, time.time())
            store = collection.store
            seq = store.seq  # read first: the rows are at least this recent
            rows = store.rows_after(after_label, CHANGES_LIMIT)
            return ok(
                {"uid": collection.uid, "seq": seq, "count": collection.count(), "rows": rows}
            )
        except VecserveError as exc:
            return failed(exc)

    def keys(self, name: str) -> Reply:
        """Every id key of the collection: a replica that counts more points than its shard
        drops the ones not here (deletes leave no rows to follow)."""
        try:
            return ok([key for _, key in self.engine.get_collection(name).store.all_keys()])
        except VecserveError as exc:
            return failed(exc)

    def config(self, name: str) -> Reply:
        try:
            return ok(self.engine.get_collection(name).config.model_dump(mode="json"))
        except VecserveError as exc:
            return failed(exc)

    def close(self) -> None:
        self.engine.close()


def call_collection(
    collection: Collection, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """A collection method, or ``query_stages``: one-stage plans, each run as a query, in
    one call, so that a shard answers every stage of a router's query or none."""
    if method == "query_stages":
        return [collection.query(plan) for plan in args[0]]
    return getattr(collection, method)(*args, **kwargs)


def create_from(
    engine: Engine, name: str, config: dict[str, Any], *, exist_ok: bool = False
) -> Collection:
    """Create collection ``name`` in ``engine`` as ``config`` (a collection's settings, as
    a router sends them or a shard describes them) says."""
    return engine.create_collection(
        name,
        config["dim"],
        config["metric"],
        config["index"],
        embedder=config["embedder"],
        store_source=config["store_source"],
        thumbnails=config.get("thumbnails", False),
        full_text=config.get("full_text"),
        payload_indexes=config.get("payload_indexes"),
        exist_ok=exist_ok,
    )
