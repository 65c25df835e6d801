"""How a command fails: one line on stderr, ``vecserve COMMAND: error: MESSAGE``, and an
exit status that says what kind of failure it was. Commands raise; :func:`exit_status`
alone prints and picks the status."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["FAILED", "INTERRUPTED", "USAGE", "CommandFailed", "exit_status"]

FAILED = 1
USAGE = 2  # bad arguments or input: argparse's own status for a usage error
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C

# torch's CPU build: a bare torch requirement on a Linux machine pulls GBs of CUDA packages.
INSTALL_HINT = (
    'pip install torch==2.13.0 --index-url "$TORCH_CPU_INDEX" && pip install '
    '"vecserve[cpu,embed,demo]" (TORCH_CPU_INDEX: PyTorch\'s CPU wheel index, as the '
    "README's quick start says)"
)


class CommandFailed(Exception):
    """A command cannot do what it was asked: ``message`` (a line for each problem) and
    the exit status."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    @classmethod
    def from_validation(
        cls, exc: ValidationError, status: int, *, options: bool = False
    ) -> CommandFailed:
        """A line for each problem pydantic found, naming its field (``a.b``), or the
        option that gave it (``--a-b``) with ``options``."""
        lines = []
        for error in exc.errors():
            parts = [str(part) for part in error["loc"]]
            where = "--" + "-".join(parts).replace("_", "-") if options else ".".join(parts)
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {message}" if parts else message)
        return cls("\n".join(lines), status)


def exit_status(command: str, run: Callable[[], int]) -> int:
    """Run a command and return its exit status; a failure is printed, never a traceback:
    bad arguments or input (the engine's InvalidInput, NotFound, Conflict) exit 2, a
    missing optional package or any other engine error 1, Ctrl-C 130."""
    from indexer.errors import Conflict, InvalidInput, NotFound, VecserveError

    try:
        return run()
    except CommandFailed as exc:
        failure = exc
    except (InvalidInput, NotFound, Conflict) as exc:
        failure = CommandFailed(exc.message, USAGE)
    except VecserveError as exc:
        failure = CommandFailed(exc.message)
    except ModuleNotFoundError as exc:
        failure = CommandFailed(f"the {command} command needs {exc.name}: {INSTALL_HINT}")
    except KeyboardInterrupt:
        failure = CommandFailed("interrupted; run the same command again to resume", INTERRUPTED)
    for line in failure.message.splitlines():
        print(f"vecserve {command}: error: {line}", file=sys.stderr)
    return failure.status
