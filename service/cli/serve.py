"""``vecserve serve``: the HTTP API under uvicorn, in this one process."""

from __future__ import annotations

import argparse
from typing import Any

from service.cli.failure import USAGE, CommandFailed
from service.cli.options import add_data_option, shown
from service.settings import API_KEYS_ENV, ENV_PREFIX, Settings

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "run", "serve"]

NAME = "serve"
HELP = "run the HTTP API"
DESCRIPTION = (
    "Serve the collections in the data folder over HTTP, in this one process. Every setting "
    f"can also come from the environment ({ENV_PREFIX}DATA_DIR, {ENV_PREFIX}HOST, "
    f"{API_KEYS_ENV}, {ENV_PREFIX}MAX_K, ...); options given here win. SIGTERM or Ctrl-C "
    "stops taking connections, finishes the requests in flight, saves the indexes and "
    "exits 0."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Settings.model_fields
    add_data_option(parser, None, f"${ENV_PREFIX}DATA_DIR or {shown(defaults['data_dir'].default)}")
    parser.add_argument(
        "--host", help=f"address to listen on (default: {defaults['host'].default})"
    )
    parser.add_argument(
        "--port", type=int, help=f"port to listen on (default: {defaults['port'].default})"
    )
    parser.add_argument(
        "--allow-no-auth",
        action="store_true",
        default=None,
        help="serve without API keys on an address other than loopback: anyone who can "
        "reach the port may read, write and delete everything",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="default: info",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then shut down gracefully and exit 0."""
    given = {"data_dir": args.data, "host": args.host, "port": args.port}
    given["allow_no_auth"] = args.allow_no_auth
    return serve(given, args.log_level)


def serve(given: dict[str, Any], log_level: str) -> int:
    """Serve with the settings ``given`` (None for those the environment or the default
    decides) until SIGTERM or SIGINT, then return 0.

    Raises:
        CommandFailed: the settings are not valid (status 2).
        DataFolderInUse: another engine has the data folder open.
    """
    import logging
    import signal

    import uvicorn
    from pydantic import ValidationError

    from indexer.engine import check_folder_free
    from service.app import create_app

    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise CommandFailed.from_validation(exc, USAGE) from None
    check_folder_free(settings.data_dir)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # uvicorn shuts down gracefully on these, then raises them again for the handlers
    # that were there before it: these, so that a requested stop exits 0.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: None)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        server_header=False,
    )
    return 0
