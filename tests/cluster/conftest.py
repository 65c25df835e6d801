"""Local Ray clusters on 127.0.0.1 for the cluster tests."""

from __future__ import annotations

import logging
from typing import Any

from indexer.errors import ShardUnavailable
from service.cluster.shard import Reply, ShardServer


def start_ray(**options: Any) -> None:
    """A Ray instance of this process's own, quiet, without its dashboard.

    ``address="local"`` unless told otherwise: a bare ``ray.init()`` joins a cluster
    already running on the machine (one that ``ray start`` or another test run left), and
    these tests must see only their own."""
    import ray

    options.setdefault("address", "local")
    ray.init(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        **options,
    )


class LocalLink:
    """A shard reached in-process (the Ray adapter only carries the same calls between
    processes); ``down`` makes it unavailable, as a dead shard is."""

    def __init__(self, name: str, server: ShardServer) -> None:
        self.name = name
        self.server = server
        self.down = False

    def primary(self, method: str, *args: Any) -> Reply:
        if self.down:
            raise ShardUnavailable(f"{self.name} is unavailable")
        reply: Reply = getattr(self.server, method)(*args)
        return reply

    read = read_now = primary
