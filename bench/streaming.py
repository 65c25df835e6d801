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
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python bench/streaming.py): import bench.* from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import RESULTS, Run, describe, save, table
from tests.support.streaming import read_through, write_input

FORMATS = ("jsonl", "csv", "parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--out", type=Path, default=RESULTS / "streaming")
    args = parser.parse_args()
    run = Run("bench.streaming")
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
    report = {**run.header(), "results": results}
    lines = markdown(report)
    save(args.out, report, lines)
    print("\n".join(lines))


def markdown(report: dict[str, Any]) -> list[str]:
    columns = ["records", "file MiB", "peak MiB", "records/s"]
    rows = [
        [
            row["format"],
            *(
                cell
                for size in (row["small"], row["large"])
                for cell in (
                    f"{size['records']:,}",
                    f"{size['file_mib']:,.0f}",
                    f"{size['peak_mib']:,.0f}",
                    f"{size['records_per_s']:,.0f}",
                )
            ),
            f"{row['peak_ratio']:.2f}",
        ]
        for row in report["results"]
    ]
    return [
        "# A batch job's reading half: peak memory as the input grows",
        "",
        describe(report),
        "",
        "Reader, batching (4,096 records) and the pipeline's bounded queues, each input in a "
        "fresh process; no model, no writes (see the module docstring).",
        "",
        *table(["format", *columns, *columns, "peak large / small"], rows),
    ]


if __name__ == "__main__":
    main()
