"""``vecserve serve``: the HTTP API under uvicorn, in this one process."""

from __future__ import annotations

import argparse
import errno
import socket
from typing import Any

from service.cli.failure import USAGE, CommandFailed
from service.cli.options import add_data_option, shown
from service.settings import API_KEYS_ENV, ENV_PREFIX, Settings

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "listen_socket", "run", "serve"]

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


def serve(given: dict[str, Any], log_level: str, listener: socket.socket | None = None) -> int:
    """Serve with the settings ``given`` (None for those the environment or the default
    decides) until SIGTERM or SIGINT, then return 0.

    The address is taken (``listener``, when the caller took it already: see
    :func:`listen_socket`) before the data folder is looked at, so that a busy port is
    told at once and leaves the folder alone.

    Raises:
        CommandFailed: the settings are not valid, or the address cannot be listened on
            (status 2).
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
    with listener or listen_socket(settings.host, settings.port) as sock:
        check_folder_free(settings.data_dir)
        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        # uvicorn shuts down gracefully on these, then raises them again for the handlers
        # that were there before it: these, so that a requested stop exits 0.
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, lambda *_: None)
        address = _address(*sock.getsockname()[:2])

        class Server(uvicorn.Server):
            """uvicorn's server on the socket taken above, saying where it listens once
            started, as it does for an address that it binds itself."""

            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                logging.getLogger("uvicorn.error").info(
                    "Uvicorn running on http://%s (Press CTRL+C to quit)", address
                )

        config = uvicorn.Config(
            create_app(settings),
            log_level=log_level,
            server_header=False,
            # uvicorn[standard]'s C parts: the event loop and HTTP parser cost a fraction
            # of asyncio's and h11's per request (uvloop is not built for Windows).
            loop="uvloop" if _installed("uvloop") else "asyncio",
            http="httptools" if _installed("httptools") else "h11",
        )
        Server(config).run(sockets=[sock])
    return 0


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port``, for :func:`serve` to serve on.

    Raises:
        CommandFailed: the address cannot be had: in use, not this machine's, a port
            that needs privileges, an unknown host name (status 2), in one line.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind((host, port))
        # Listening now, not once uvicorn starts: a port only bound is free to another
        # socket that sets SO_REUSEADDR too (another vecserve), and quickstart binds its
        # port a minute before it serves. Connections wait in the backlog meanwhile.
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        why = _BIND_ERRORS.get(exc.errno or 0, exc.strerror or str(exc))
        raise CommandFailed(f"cannot listen on {_address(host, port)}: {why}", USAGE) from None
    return sock


_BACKLOG = 2048  # uvicorn's default, which it sets again when it starts serving

_BIND_ERRORS = {
    errno.EADDRINUSE: "the address is already in use (another vecserve, or another "
    "program, listens there); stop it, or choose another port with --port",
    errno.EADDRNOTAVAIL: "this machine has no such address; --host takes one of its own "
    "(127.0.0.1, 0.0.0.0 for all)",
    errno.EACCES: "permission denied (a port below 1024 needs privileges; take one above)",
}


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
