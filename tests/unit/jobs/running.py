"""Jobs as the tests run them: inputs written for them, a job on a data folder (in this
process or as ``vecserve index``), and what it left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from indexer import Engine
from indexer.embedders import EmbedderRegistry
from indexer.jobs import IndexJobConfig, JobSummary, run_index_job


def rows(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "title": f"note {i}: item number {i}", "n": i} for i in range(n)]


def write_jsonl(path: Path, records: list[Any]) -> Path:
    with open(path, "w") as f:
        for record in records:
            f.write(record if isinstance(record, str) else json.dumps(record))
            f.write("\n")
    return path


def job(source: Path, data: Path, **options: Any) -> IndexJobConfig:
    return IndexJobConfig(source=source, collection="docs", data=data, **options)


def run(
    config: IndexJobConfig, engine: Engine, registry: EmbedderRegistry, **kw: Any
) -> JobSummary:
    return run_index_job(config, engine=engine, registry=registry, **kw)


def read_rejects(summary: JobSummary) -> list[dict[str, Any]]:
    assert summary.rejects_path is not None
    return [json.loads(line) for line in summary.rejects_path.read_text().splitlines()]


def all_ids(engine: Engine, name: str = "docs") -> list[Any]:
    collection = engine.get_collection(name)
    ids: list[Any] = []
    cursor = None
    while True:
        points, cursor = collection.scroll(limit=1000, cursor=cursor)
        ids.extend(p.id for p in points)
        if cursor is None:
            return ids


def cli(*args: str | Path) -> subprocess.Popen[str]:
    # One torch thread: on two cores shared with other work, a second OpenMP thread
    # spin-waiting for a busy core makes the model several times slower.
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "index", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
