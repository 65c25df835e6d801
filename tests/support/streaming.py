"""Large job inputs, written a chunk at a time, and the reading half of a job run over
one in a process of its own: what shows that a job's memory does not grow with its input
(tests/unit/jobs/test_sources.py, and ``python -m bench.streaming`` at up to 10 million
records).

An input's records are ``{"id", "text", "n"}`` with ~100 bytes of text each. The reading
half is the format's reader, batching into points (4,096 records a batch) and the read /
embed / write pipeline with its bounded queues; the model is left out (each batch gets zero
vectors of 384 dimensions, as the model would add them), and so is the write.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
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
