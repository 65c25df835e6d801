"""Sharded, replicated serving on Ray Serve: the only module that imports Ray Serve.

One Serve application, ``vecserve``:

- ``shard-<i>``: one replica, owning the data folder ``DATA/shard-<i>`` (its own SQLite
  store of record and FAISS indexes). Ray Serve restarts it from that folder when it
  dies. When a node declares the resource ``vecserve-shard-<i>``, the shard is placed
  there (its folder is on that node's disk); otherwise anywhere, on storage every node
  reaches.
- ``shard-<i>-read``: ``replicas`` read replicas of shard i, each in a folder of its own
  under ``DATA/shard-<i>-replicas``, following the shard (:mod:`service.cluster.replica`).
- ``router``: the same HTTP API as ``vecserve serve`` (the same FastAPI app, over a
  :class:`~service.cluster.sharded.ShardedEngine`), behind Serve's HTTP proxy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any, cast

import ray
from ray import serve
from ray.exceptions import RayError
from ray.serve.handle import DeploymentHandle

from indexer import Engine
from indexer.errors import ShardUnavailable
from indexer.query import RerankerRegistry
from service.app import create_app
from service.cluster.replica import ReplicaServer
from service.cluster.shard import WRITES, Reply, ShardServer
from service.cluster.sharded import ShardedEngine
from service.settings import Settings

log = logging.getLogger(__name__)

APP_NAME = "vecserve"
# A call to a shard waits in two ways. Until a copy of the shard takes it: Serve's handle
# queues a call while the deployment has no running replica (one that died is being
# replaced), and sends a call that a dying replica did not accept to the next one, so a
# dead shard is seen as a wait, never as an error. Then for its answer.
# How long a write (or a read that must see every write) waits for the shard to take it.
PRIMARY_REACH_S = 10.0
# How long a read waits for each copy of the shard to take it; the router's engine retries
# reads for its retry_s, then answers 503.
READ_REACH_S = 1.0
# How long a read for a partial answer waits for each copy of the shard to take it: a
# shard that is restarting is left out instead of waited for.
PARTIAL_WAIT_S = 2.0
# How long a shard that took a call may take to answer it.
CALL_TIMEOUT_S = 30.0
HEALTH_CHECK_PERIOD_S = 1.0
# Requests a router, shard or replica takes at once (Serve's default, 5, queues the rest in
# the proxy): the engine's readers-writer lock and the micro-batcher handle concurrency.
MAX_ONGOING = 256
# What every request pays for in Serve and can do without. No access log line per request
# in the proxy, the router and the shard (three writes to a log file each, for one search).
QUIET = {"enable_access_log": False}


class ShardDeployment:
    """A Serve replica holding one shard's engine."""

    def __init__(
        self, folder: str, embedders: list[dict[str, Any]], device: str, warm: bool
    ) -> None:
        self.server = ShardServer(folder, embedders, device, warm=warm)

    def engine_call(self, method: str, *args: Any) -> Reply:
        return self.server.engine_call(method, *args)

    def collection_call(
        self, name: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Reply:
        return self.server.collection_call(name, method, args, kwargs)

    def changes(self, name: str, after_label: int, replica: str, applied_seq: int) -> Reply:
        return self.server.changes(name, after_label, replica, applied_seq)

    def keys(self, name: str) -> Reply:
        return self.server.keys(name)

    def config(self, name: str) -> Reply:
        return self.server.config(name)

    def where(self) -> dict[str, Any]:
        """The Ray node and process this shard runs in (for placement checks)."""
        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def __del__(self) -> None:  # Serve's graceful shutdown: save indexes, release the folder
        server = getattr(self, "server", None)
        if server is not None:
            server.close()


class ReplicaDeployment:
    """A Serve replica answering reads for one shard from a copy of its own."""

    async def __init__(  # type: ignore[misc]  # Serve awaits an async constructor
        self,
        primary: DeploymentHandle,
        folder: str,
        embedders: list[dict[str, Any]],
        device: str,
        interval_s: float,
    ) -> None:
        def call(method: str, *args: Any) -> Reply:
            reply: Reply = getattr(primary, method).remote(*args).result(timeout_s=CALL_TIMEOUT_S)
            return reply

        replica_id = serve.get_replica_context().replica_tag
        # In a thread: the first catch-up waits on the shard, which Serve refuses on the
        # replica's event loop.
        self.server = await asyncio.to_thread(
            ReplicaServer,
            folder,
            embedders,
            device,
            call,
            replica_id=replica_id,
            interval_s=interval_s,
        )

    def collection_call(
        self, name: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Reply:
        return self.server.collection_call(name, method, args, kwargs)

    def where(self) -> dict[str, Any]:
        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def __del__(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.close()


@dataclasses.dataclass(eq=False)
class RayShardLink:
    """:class:`~service.cluster.fanout.ShardLink` over Serve deployment handles: the
    shard's, and its read replicas' when it has any."""

    name: str
    shard: DeploymentHandle
    replicas: DeploymentHandle | None
    # How long after a write through this router reads go to the shard itself.
    fresh_s: float
    partial_wait_s: float = PARTIAL_WAIT_S
    last_write: float = dataclasses.field(default=-float("inf"), init=False)

    def primary(self, method: str, *args: Any) -> Reply:
        if method == "collection_call" and args[1] in WRITES:
            self.last_write = time.monotonic()
        return self._call(self.shard, method, args, PRIMARY_REACH_S)

    def read(self, method: str, *args: Any) -> Reply:
        return self._read(method, args, READ_REACH_S)

    def read_now(self, method: str, *args: Any) -> Reply:
        return self._read(method, args, self.partial_wait_s)

    def _read(self, method: str, args: tuple[Any, ...], reach_s: float) -> Reply:
        # Reads that follow a write through this router by less than a replica's lag bound
        # go to the shard itself, so that a client reads its own writes.
        recent = time.monotonic() - self.last_write < self.fresh_s
        if (
            self.replicas is not None
            and not recent
            and method == "collection_call"
            and args[1] != "describe"
        ):
            try:
                reply = self._call(self.replicas, method, args, reach_s)
            except ShardUnavailable:
                reply = None  # no replica answers: the shard itself may
            # A collection made a moment ago may not have reached the replicas yet.
            if reply is not None and reply[:2] != ("error", "CollectionNotFound"):
                return reply
        return self._call(self.shard, method, args, reach_s)

    def _call(
        self, handle: DeploymentHandle, method: str, args: tuple[Any, ...], reach_s: float
    ) -> Reply:
        """The shard's reply; :class:`ShardUnavailable` when no copy of it took the call
        within ``reach_s``, or it died or did not answer within CALL_TIMEOUT_S."""
        response = getattr(handle, method).remote(*args)
        try:
            # Blocks until a replica has accepted the call (Serve's developer API for this
            # wait, which DeploymentResponse.result() does not tell apart from the answer).
            ref = response._to_object_ref_sync(_timeout_s=reach_s)
            reply: Reply = ray.get(ref, timeout=CALL_TIMEOUT_S)
        except (RayError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                response.cancel()  # still queued or running: no use once given up on
            raise ShardUnavailable(
                f"{self.name} is unavailable ({type(exc).__name__}); the cluster restarts "
                "it: retry shortly"
            ) from None
        return reply


@serve.ingress()
class Router:
    """The HTTP API of ``vecserve serve``, over the shards."""

    def __init__(
        self,
        settings: dict[str, Any],
        shards: list[tuple[DeploymentHandle, DeploymentHandle | None]],
        fresh_s: float,
        partial_wait_s: float = PARTIAL_WAIT_S,
    ) -> None:
        # The shards hold and warm the models; the router embeds nothing itself.
        self.settings = Settings(**{**settings, "warm_embedders": False})
        self.links = [
            RayShardLink(f"shard-{i}", primary, reads, fresh_s, partial_wait_s)
            for i, (primary, reads) in enumerate(shards)
        ]

    def __serve_build_asgi_app__(self) -> Any:
        links, rerankers = self.links, RerankerRegistry(self.settings.rerankers)
        return create_app(
            self.settings,
            engine=lambda: cast(Engine, ShardedEngine(links, rerankers=rerankers)),
        )


def run(
    settings: Settings,
    shards: int,
    replicas: int,
    *,
    sync_interval_s: float = 0.5,
    partial_wait_s: float = PARTIAL_WAIT_S,
) -> None:
    """Deploy a cluster of ``shards`` shards with ``replicas`` read replicas each, its data
    under ``settings.data_dir``, on the Ray cluster this process is connected to, listening
    on ``settings.host:settings.port`` (Serve's HTTP proxy), and return once it is ready.
    Replicas poll their shard every ``sync_interval_s``; a read for a partial answer waits
    ``partial_wait_s`` for each copy of a shard it asks."""
    bound = [_bind_shard(settings, i, replicas, sync_interval_s) for i in range(shards)]
    router = serve.deployment(
        Router,
        name="router",
        max_ongoing_requests=MAX_ONGOING,
        logging_config=QUIET,
        ray_actor_options={"num_cpus": 0},
    ).bind(
        settings.model_dump(mode="json", exclude={"api_keys", "read_only_api_keys"})
        | {
            "api_keys": [k.get_secret_value() for k in settings.api_keys],
            "read_only_api_keys": [k.get_secret_value() for k in settings.read_only_api_keys],
        },
        bound,
        # A replica lags by at most a sync interval and a round; twice that, with room.
        2 * sync_interval_s + 1.0,
        partial_wait_s,
    )
    serve.start(http_options={"host": settings.host, "port": settings.port}, logging_config=QUIET)
    serve.run(router, name=APP_NAME, route_prefix="/")


def _bind_shard(
    settings: Settings, i: int, replicas: int, sync_interval_s: float
) -> tuple[serve.Application, serve.Application | None]:
    """Shard ``i``'s deployment and its read replicas' (None without replicas)."""
    embedders = [config.model_dump(mode="json") for config in settings.embedders]
    data = Path(settings.data_dir).resolve()
    placed = f"vecserve-shard-{i}" in ray.cluster_resources()
    primary = serve.deployment(
        ShardDeployment,
        name=f"shard-{i}",
        num_replicas=1,
        health_check_period_s=HEALTH_CHECK_PERIOD_S,
        max_ongoing_requests=MAX_ONGOING,
        logging_config=QUIET,
        ray_actor_options={
            "num_cpus": 0,
            "resources": {f"vecserve-shard-{i}": 0.01} if placed else {},
        },
    ).bind(str(data / f"shard-{i}"), embedders, settings.device, settings.warm_embedders)
    if not replicas:
        return primary, None
    reads = serve.deployment(
        ReplicaDeployment,
        name=f"shard-{i}-read",
        num_replicas=replicas,
        health_check_period_s=HEALTH_CHECK_PERIOD_S,
        max_ongoing_requests=MAX_ONGOING,
        logging_config=QUIET,
        ray_actor_options={"num_cpus": 0},
    ).bind(primary, str(data / f"shard-{i}-replicas"), embedders, settings.device, sync_interval_s)
    return primary, reads


def shutdown() -> None:
    serve.delete(APP_NAME)
