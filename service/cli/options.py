"""Options that several commands share."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_data_option", "shown"]


def shown(path: Path) -> str:
    """A default path as a user would type it: ``./data`` rather than ``data``."""
    return str(path) if path.is_absolute() else f"./{path}"


def add_data_option(
    parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup,
    default: Path | None,
    default_help: str | None = None,
) -> None:
    """``--data DIR``: the data folder, ``default`` when not given (None: the command
    decides, and ``default_help`` says how)."""
    parser.add_argument(
        "--data",
        default=None if default is None else shown(default),
        metavar="DIR",
        help=f"data folder (default: {default_help or shown(default or Path())})",
    )
