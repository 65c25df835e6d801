"""Local Ray clusters on 127.0.0.1 for the cluster tests."""

from __future__ import annotations

import logging
import socket
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_ray(**options: Any) -> None:
    """A Ray instance of this process's own, quiet, without its dashboard."""
    import ray

    ray.init(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        **options,
    )
