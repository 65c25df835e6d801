"""The ``vecserve`` command line: a module per command, each naming itself (``NAME``,
``HELP``, ``DESCRIPTION``) and giving its options (``add_arguments``) and its work
(``run``, which returns the exit status or raises), and one failure path
(:mod:`service.cli.failure`). Models, servers and data load when a command runs."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names (default: ``sys.argv[1:]``); returns its exit status."""
    # faiss and torch each bring an OpenMP runtime whose idle threads spin, by default, on
    # the cores the other one needs: under load on a small machine a search or an
    # embedding then stalls for hundreds of ms. Set before either is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from service.cli import cluster, demo, index, quickstart, serve
    from service.cli.failure import exit_status

    parser = argparse.ArgumentParser(prog="vecserve", description="Self-hosted vector search.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (demo, quickstart, index, serve, cluster):
        command_parser = commands.add_parser(
            command.NAME, help=command.HELP, description=command.DESCRIPTION
        )
        command.add_arguments(command_parser)
        command_parser.set_defaults(run=command.run)
    args = parser.parse_args(argv)
    return exit_status(args.command, lambda: args.run(args))
