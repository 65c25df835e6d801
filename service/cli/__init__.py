"""The ``vecserve`` command line: one module per command, each with ``add_parser`` and
``run``, and one failure path (:mod:`service.cli.failure`). Heavy imports wait until a
command runs."""

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
    from service.cli import demo, index, quickstart, serve
    from service.cli.failure import exit_status

    parser = argparse.ArgumentParser(prog="vecserve", description="Self-hosted vector search.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (demo, quickstart, index, serve):
        command.add_parser(commands)
    args = parser.parse_args(argv)
    return exit_status(args.command, lambda: args.run(args))
