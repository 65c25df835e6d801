"""What ``vecserve cluster start|local|stop`` do: join (or start) Ray, then deploy or delete
the cluster application (:mod:`service.cluster.serving`)."""

from __future__ import annotations

import logging
import signal
import threading

import ray
from ray import serve

from service.cluster import serving
from service.settings import Settings


def _join(address: str | None, **options: object) -> None:
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        **options,
    )


def start(settings: Settings, shards: int, replicas: int, address: str) -> None:
    """Deploy on the running Ray cluster at ``address`` and return once it answers; the
    cluster keeps serving after this process exits."""
    _join(address, namespace="vecserve")
    serving.run(settings, shards, replicas)


def local(settings: Settings, shards: int, replicas: int, cpus: int | None) -> None:
    """Start a Ray instance on this machine, deploy on it, and serve until SIGTERM or
    Ctrl-C; then stop Serve (shards save their indexes) and Ray."""
    _join(None, num_cpus=cpus)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        serving.run(settings, shards, replicas)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


def stop(address: str) -> None:
    """Delete the cluster application (the shards' folders stay, to serve again)."""
    _join(address, namespace="vecserve")
    serving.shutdown()
