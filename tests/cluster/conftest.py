"""Local Ray clusters on 127.0.0.1 for the cluster tests."""

from __future__ import annotations

import logging
from typing import Any


def start_ray(**options: Any) -> None:
    """A Ray instance of this process's own, quiet, without its dashboard."""
    import ray

    ray.init(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        **options,
    )
