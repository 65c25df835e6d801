"""Memory of a batch job's reading half as its input grows: it streams, so it stays flat.

    python -m bench.streaming [--rows N] [--small N] [--formats jsonl,csv,parquet] [--out PREFIX]

For each format, an input of ``--small`` records (default 100,000) and one of ``--rows``
(default 10,000,000) are written to a temporary folder (``{"id", "text", "n"}``, ~100
bytes of text each; Parquet in row groups of 50,000). Each is then read in a process of
its own by the job's own code, the part that depends on the input's length: the format's
reader, batching into points (4,096 records a batch) and the read / embed / write pipeline
with its bounded queues. The model is left out (each batch gets zero vectors of 384
dimensions, as the model would add them), and so is the write: the model's cost does
not depend on the input's length, and a collection's memory grows with the points it
holds whatever feeds it.

Reported: records per second through that path, and the process's peak resident size
(``VmHWM``). The ratio of the two peaks is the figure: 1.0 is flat. Results go to
``bench/results/streaming.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.streaming import read_through, write_input

DEFAULT_OUT = Path(__file__).parent / "results" / "streaming"
FORMATS = ("jsonl", "csv", "parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    started = time.perf_counter()
    results = []
    for fmt in args.formats.split(","):
        row: dict[str, Any] = {"format": fmt}
        for label, n in (("small", args.small), ("large", args.rows)):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"input.{fmt}"
                write_input(path, fmt, n)
                size = path.stat().st_size
                written, peak_kib, seconds = read_through(path, fmt)
            assert written == n, (written, n)
            row[label] = {
                "records": n,
                "file_mib": size / 2**20,
                "peak_mib": peak_kib / 1024,
                "records_per_s": n / seconds,
            }
            print(fmt, label, json.dumps(row[label]), flush=True)
        row["peak_ratio"] = row["large"]["peak_mib"] / row["small"]["peak_mib"]
        results.append(row)
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "python -m bench.streaming",
        "runtime_s": time.perf_counter() - started,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# A batch job's reading half: peak memory as the input grows",
        "",
        f"`{report['command']}` on {report['date']}, {report['machine']['cpus']} CPUs, "
        f"{report['runtime_s']:.0f} s in all. Reader, batching (4,096 records) and the "
        "pipeline's bounded queues, each input in a fresh process; no model, no writes "
        "(see the module docstring).",
        "",
        "| format | records | file MiB | peak MiB | records/s | records | file MiB | peak MiB "
        "| records/s | peak large / small |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results:
        small, large = row["small"], row["large"]
        lines.append(
            f"| {row['format']} | {small['records']:,} | {small['file_mib']:,.0f} | "
            f"{small['peak_mib']:,.0f} | {small['records_per_s']:,.0f} | "
            f"{large['records']:,} | {large['file_mib']:,.0f} | {large['peak_mib']:,.0f} | "
            f"{large['records_per_s']:,.0f} | {row['peak_ratio']:.2f} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"saved {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
