"""Write the SDK's synchronous code from its asynchronous source, as encode/httpcore does.

    python scripts/unasync.py          # write the generated files
    python scripts/unasync.py --check  # exit 1, naming them, when a generated file is stale

The async client is the one source of truth: a generated file is its source with each
async token below replaced by its sync twin (``AsyncClient`` -> ``Client``, ``await x`` ->
``x``, ``async with`` -> ``with``, ...), the few phrases of documentation in which the two
truly differ replaced whole, and a module docstring of its own; then its imports are
sorted and it is formatted by ruff, as the rest of the code is. What cannot be written so
(threads against tasks, file work off the event loop) lives in a hand-written pair of
modules, ``_async_io.py`` and ``_sync_io.py``.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SDK = Path("clients/python/vecserve_client")

# Applied in this order, each to whole tokens.
SUBSTITUTIONS = [
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAsyncClient\b", "Client"),
    (r"\bAsyncBaseTransport\b", "BaseTransport"),
    (r"\bAsyncHTTPTransport\b", "HTTPTransport"),
    (r"\bAsyncRetryTransport\b", "RetryTransport"),
    (r"\bhandle_async_request\b", "handle_request"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\baclose\b", "close"),
    (r"\baread\b", "read"),
    (r"\baiter_bytes\b", "iter_bytes"),
    (r"\b_async_io\b", "_sync_io"),
    (r"\bimport asyncio\b", "import time"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\basync (def|with|for) ", r"\1 "),
    (r"\bawait ", ""),
    # An async generator cannot ``yield from``; a sync one says so.
    (r"(?m)^(\s*)for (\w+) in (.+):\n\s*yield \2$", r"\1yield from \3"),
]
# What must not be left in a generated file: async code the substitutions missed.
LEFT_OVER = re.compile(r"\b(async def|async with|async for|await|asyncio\.\w+)\b")


@dataclass(frozen=True)
class Generated:
    """A file written from ``source``: its module docstring, and the phrases (in the
    source) that it replaces whole rather than token by token."""

    source: Path
    target: Path
    docstring: str
    phrases: dict[str, str] = field(default_factory=dict)


FILES = [
    Generated(
        SDK / "_async_client.py",
        SDK / "_client.py",
        "The synchronous client.",
        {
            "A connection to a vecserve server, for asyncio: the methods of :class:`Client`,\n"
            "    as coroutines (and ``scroll`` as an async iterator).": (
                "A connection to a vecserve server."
            ),
            "transport: an httpx async transport to send requests through instead of the\n"
            "            network, such as ``httpx.MockTransport`` or "
            "``httpx.ASGITransport(app)``.": (
                "transport: an httpx transport to send requests through instead of the "
                "network,\n"
                "            such as ``httpx.MockTransport`` in tests. httpx's ASGI transport "
                "is async\n"
                "            only: to call the app in-process, use :class:`AsyncClient` with\n"
                "            ``httpx.ASGITransport(app)``."
            ),
        },
    ),
    Generated(
        SDK / "_transport" / "_async_retry.py",
        SDK / "_transport" / "_retry.py",
        "The retry transport of the sync client: sends each request through the real\n"
        "transport, again as :mod:`vecserve_client._transport._policy` says.",
    ),
]


def generate(spec: Generated) -> str:
    """The text of ``spec.target``, from its source as it is now."""
    text = (ROOT / spec.source).read_text()
    kept: list[str] = []
    for phrase, replacement in spec.phrases.items():
        if text.count(phrase) != 1:
            raise SystemExit(f"unasync: {spec.source} no longer holds the phrase {phrase!r}")
        # A placeholder, so that the token substitutions leave the replacement alone.
        text = text.replace(phrase, f"\0{len(kept)}\0")
        kept.append(replacement)
    for pattern, replacement in SUBSTITUTIONS:
        text = re.sub(pattern, replacement, text)
    text = re.sub("\0(\\d+)\0", lambda m: kept[int(m.group(1))], text)
    text = with_docstring(text, spec)
    if left := LEFT_OVER.search(text):
        raise SystemExit(f"unasync: {spec.source} has {left.group(0)!r} left in its sync twin")
    text = ruff(["check", "--select", "I", "--fix", "--quiet"], text, spec.target)
    return ruff(["format", "--quiet"], text, spec.target)


def with_docstring(text: str, spec: Generated) -> str:
    """``text`` with its module docstring replaced by the generated file's own."""
    first = ast.parse(text).body[0]
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)):
        raise SystemExit(f"unasync: {spec.source} has no module docstring")
    rest = text.splitlines(keepends=True)[first.end_lineno or 0 :]
    header = (
        f'"""{spec.docstring}\n\n'
        f"Generated from {spec.source.name} by scripts/unasync.py; do not edit.\n"
        '"""\n'
    )
    return header + "".join(rest)


def ruff(command: list[str], text: str, path: Path) -> str:
    """``text`` passed through ``ruff COMMAND`` as the file at ``path`` (for its config)."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--stdin-filename", str(path), "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise SystemExit(f"unasync: ruff {command[0]} refused {path}:\n{result.stderr}")
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a file is stale"
    )
    args = parser.parse_args(argv)
    stale = []
    for spec in FILES:
        text = generate(spec)
        target = ROOT / spec.target
        if target.exists() and target.read_text() == text:
            continue
        stale.append(spec)
        if not args.check:
            target.write_text(text)
            print(f"wrote {spec.target}")
    if args.check and stale:
        for spec in stale:
            print(f"{spec.target} is stale: run python scripts/unasync.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
