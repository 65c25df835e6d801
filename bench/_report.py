"""What every benchmark saves: ``bench/results/NAME.json`` (the figures, the command and
the machine) and ``NAME.md`` (a short markdown table), and the options that choose them."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def add_output_options(parser: argparse.ArgumentParser, name: str, *, quick: str | None) -> None:
    """``--out PREFIX`` and, where the benchmark has a smoke test, ``--quick`` (help
    ``quick``), which saves nothing unless ``--out`` is given."""
    if quick is not None:
        parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument(
        "--out",
        type=Path,
        help=f"output prefix for .json and .md (default {RESULTS / name}"
        + ("; none with --quick)" if quick is not None else ")"),
    )


def output_prefix(args: argparse.Namespace, name: str) -> Path | None:
    """Where to save: ``--out``, else ``bench/results/NAME`` (nowhere for ``--quick``)."""
    out: Path | None = args.out
    if out is None and not getattr(args, "quick", False):
        out = RESULTS / name
    return out


class Run:
    """One run of a benchmark: its command, when and where it ran, and how long it took.
    Created at the start, so that the load average is taken before the work."""

    def __init__(self, module: str, args: Sequence[str] | None = None) -> None:
        given = sys.argv[1:] if args is None else list(args)
        self.command = " ".join(["python -m", module, *given])
        self.started = time.perf_counter()
        self.load_at_start = os.getloadavg()[0]

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def header(self) -> dict[str, Any]:
        """The command, the date, the seconds so far and the machine, with the versions
        and thread counts of the libraries the benchmark has loaded."""
        machine: dict[str, Any] = {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        }
        if "numpy" in sys.modules:
            machine["numpy"] = sys.modules["numpy"].__version__
        if "faiss" in sys.modules:
            faiss = sys.modules["faiss"]
            machine["faiss"] = faiss.__version__
            machine["faiss_omp_threads"] = faiss.omp_get_max_threads()
            machine["gpus"] = faiss.get_num_gpus()
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            machine["torch"] = torch.__version__
            machine["torch_threads"] = torch.get_num_threads()
        # Other work on a shared machine slows every side of a comparison alike (they run
        # in turns), not the ratios: the load says how far the absolute figures hold.
        machine["load_average_1m"] = {"start": self.load_at_start, "end": os.getloadavg()[0]}
        return {
            "command": self.command,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "runtime_s": self.seconds,
            "machine": machine,
        }

    def finish(
        self,
        out: Path | None,
        figures: dict[str, Any],
        markdown: Callable[[dict[str, Any]], Sequence[str]],
    ) -> None:
        """Say how long the run took; then, unless ``out`` is None, :func:`save` the report
        (:meth:`header` and ``figures``) and the lines ``markdown`` makes of it."""
        print(f"\n{self.seconds:.0f} s in all", flush=True)
        if out is not None:
            report = {**self.header(), **figures}
            save(out, report, markdown(report))


def describe(report: dict[str, Any]) -> str:
    """The sentence under a table's title: command, date, machine, duration and load."""
    machine = report["machine"]
    parts = [f"{machine['cpu_count']} CPUs"]
    if "faiss" in machine:
        gpus = f", {machine['gpus']} GPU(s)" if machine.get("gpus") else ""
        parts.append(
            f"faiss {machine['faiss']} ({machine['faiss_omp_threads']} OpenMP threads{gpus})"
        )
    if "torch" in machine:
        parts.append(f"torch {machine['torch']} ({machine['torch_threads']} threads)")
    load = machine["load_average_1m"]
    return (
        f"`{report['command']}` on {report['date']}: {', '.join(parts)}, "
        f"{report['runtime_s']:.0f} s in all. One-minute load average {load['start']:.1f} "
        f"at the start and {load['end']:.1f} at the end (anything above the CPU count is "
        "other work on a shared machine): compare the ratios within a run, not the "
        "absolute figures across runs."
    )


def table_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table's lines: the header, its rule and the rows."""
    return [table_row(header), "|" + "---|" * len(header), *map(table_row, rows)]


def save(out: Path, report: dict[str, Any], markdown: Sequence[str]) -> None:
    """Write ``out``.json and ``out``.md and say so."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(markdown) + "\n")
    print(f"saved {out.with_suffix('.json')} and {out.with_suffix('.md')}", flush=True)


def publish(
    args: argparse.Namespace, name: str, report: dict[str, Any], markdown: Sequence[str]
) -> None:
    """Print the markdown, then :func:`save` both files where :func:`output_prefix` says
    (nowhere for ``--quick`` without ``--out``)."""
    print("\n".join(markdown))
    out = output_prefix(args, name)
    if out is not None:
        save(out, report, markdown)
