"""``vecserve cluster``: sharded, replicated serving on Ray (the ``cluster`` extra)."""

from __future__ import annotations

import argparse

from service.cli.failure import USAGE, CommandFailed
from service.cli.options import add_data_option
from service.settings import API_KEYS_ENV, ENV_PREFIX, Settings

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "run"]

NAME = "cluster"
HELP = "serve collections split into shards, with read replicas, on Ray"
DESCRIPTION = (
    "Serve the same HTTP API as `vecserve serve` from a Ray cluster: each collection split "
    "into --shards shards, each owning a data folder under --data, each with --replicas "
    "read replicas. `local` starts Ray on this machine and serves until Ctrl-C; `start` "
    "deploys on a running Ray cluster and returns once it answers; `stop` removes the "
    f"deployment (the folders stay). Settings come from the environment too ({API_KEYS_ENV}, "
    f'{ENV_PREFIX}MAX_K, ...). Needs `pip install "vecserve[cluster]"`.'
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["local", "start", "stop"], help="what to do")
    parser.add_argument(
        "--address",
        default="auto",
        help="the Ray cluster for start and stop (default: auto, the one this machine is in)",
    )
    parser.add_argument("--shards", type=int, default=2, help="shards per collection (default 2)")
    parser.add_argument(
        "--replicas", type=int, default=0, help="read replicas per shard (default 0)"
    )
    parser.add_argument("--cpus", type=int, help="local: CPUs Ray may use (default: all)")
    add_data_option(parser, None, f"${ENV_PREFIX}DATA_DIR or ./data")
    parser.add_argument("--host", help="address the router listens on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port the router listens on (default: 8000)")


def run(args: argparse.Namespace) -> int:
    """Deploy, serve or remove the cluster application.

    Raises:
        CommandFailed: bad settings or counts (status 2), or Ray is not installed.
    """
    from pydantic import ValidationError

    if args.shards < 1 or args.replicas < 0:
        raise CommandFailed("--shards must be at least 1 and --replicas at least 0", USAGE)
    given = {"data_dir": args.data, "host": args.host, "port": args.port}
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise CommandFailed.from_validation(exc, USAGE) from None
    try:
        from service.cluster import launch
    except ModuleNotFoundError as exc:
        raise CommandFailed(
            f'the cluster command needs {exc.name}: pip install "vecserve[cluster]"'
        ) from None
    if args.action == "local":
        launch.local(settings, args.shards, args.replicas, args.cpus)
    elif args.action == "start":
        launch.start(settings, args.shards, args.replicas, args.address)
        print(f"serving on http://{settings.host}:{settings.port} ({args.shards} shards)")
    else:
        launch.stop(args.address)
    return 0
