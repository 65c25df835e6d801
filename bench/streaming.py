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
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path(__file__).parent / "results" / "streaming"
FORMATS = ("jsonl", "csv", "parquet")
ROW_GROUP = 50_000
CHUNK = 100_000

STREAM_SCRIPT = """
import sys, time
from pathlib import Path
import numpy as np
from indexer.jobs.pipeline import run_pipeline
from indexer.jobs.records import PointFields, read_batches
from indexer.jobs.sources import Start, open_source

path, fmt = Path(sys.argv[1]), sys.argv[2]
source = open_source(path, fmt)
fields = PointFields("id", "text", None, ("n",), path.parent, check_payloads=fmt == "parquet")
items = source.read(Start(), ("id", "text", "n"))
written = 0

def embed(batch):  # what the model adds to a batch: its vectors
    batch.vectors = np.zeros((len(batch.ids), 384), np.float32)
    return batch

def write(batch):
    global written
    written += len(batch.ids)

started = time.perf_counter()
run_pipeline(read_batches(items, fields, 4096, source.units_done), embed, write)
seconds = time.perf_counter() - started
# The peak resident size of this process image (ru_maxrss would carry the parent's
# across fork and exec).
status = Path("/proc/self/status").read_text()
peak_kib = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmHWM:"))
print(written, peak_kib, seconds)
"""


def records(start: int, stop: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "text": f"record {i} " + "lorem ipsum dolor sit amet " * 3, "n": i}
        for i in range(start, stop)
    ]


def write_input(path: Path, fmt: str, n: int, row_group: int = ROW_GROUP) -> None:
    """``n`` records as ``fmt``, written a chunk at a time (Parquet: a row group at a
    time, of ``row_group`` rows)."""
    if fmt == "jsonl":
        with open(path, "wb") as f:
            for start in range(0, n, CHUNK):
                f.write(
                    b"".join(orjson.dumps(r) + b"\n" for r in records(start, min(n, start + CHUNK)))
                )
    elif fmt == "csv":
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["id", "text", "n"])
            writer.writeheader()
            for start in range(0, n, CHUNK):
                writer.writerows(records(start, min(n, start + CHUNK)))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        parquet: Any = None
        try:
            for start in range(0, n, row_group):
                table = pa.Table.from_pylist(records(start, min(n, start + row_group)))
                if parquet is None:
                    parquet = pq.ParquetWriter(path, table.schema)
                parquet.write_table(table)
        finally:
            if parquet is not None:
                parquet.close()


def read_through(path: Path, fmt: str) -> tuple[int, int, float]:
    """Records read, peak resident KiB and seconds of the job's reading half over ``path``,
    in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-c", STREAM_SCRIPT, str(path), fmt],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    written, peak_kib, seconds = result.stdout.split()
    return int(written), int(peak_kib), float(seconds)


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
