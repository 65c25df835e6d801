"""Batch indexing on Ray Data builds the collection the local job builds, point for point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import ray

from indexer import Engine
from indexer.jobs import IndexJobConfig, run_index_job
from service.cluster.data import run_index_job_on_ray
from tests.cluster.conftest import start_ray

RECORDS = 600
# Ids r0..r549 (records 550..599 update r0..r49); the empty texts of records 102, 199, 296,
# 393 and 490 are rejected, and no other record has their ids.
POINTS = 545


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    start_ray(num_cpus=2)
    yield
    ray.shutdown()


def _write_input(path: Path, records: int = RECORDS) -> Path:
    with open(path, "w") as f:
        for i in range(records):
            text = (
                "" if i % 97 == 5 else f"record {i}: a note about {['cats', 'ships', 'tea'][i % 3]}"
            )
            f.write(json.dumps({"id": f"r{i % 550}", "body": text, "n": i}) + "\n")
        f.write("{not json\n")
    return path


def test_a_ray_data_job_builds_the_local_jobs_collection(local_ray: None, tmp_path: Path) -> None:
    source = _write_input(tmp_path / "notes.jsonl")

    def config(data: Path) -> IndexJobConfig:
        return IndexJobConfig(
            source=source,
            collection="notes",
            data=data,
            id_field="id",
            text_field="body",
            payload_fields=("n",),
            batch_size=64,
        )

    on_ray = run_index_job_on_ray(config(tmp_path / "ray"))
    local = run_index_job(config(tmp_path / "local"))
    assert (on_ray.indexed, on_ray.rejected, on_ray.replaced) == (
        local.indexed,
        local.rejected,
        local.replaced,
    )
    assert on_ray.rejects_path is not None
    assert local.rejects_path is not None
    assert on_ray.rejects_path.read_bytes() == local.rejects_path.read_bytes()
    with Engine(tmp_path / "ray") as a, Engine(tmp_path / "local") as b:
        mine, theirs = a.get_collection("notes"), b.get_collection("notes")
        assert mine.count() == theirs.count() == POINTS
        ids = [p.id for p in theirs.scroll(10_000)[0]]
        for p, q in zip(mine.get(ids), theirs.get(ids), strict=True):
            assert (p.id, p.payload) == (q.id, q.payload)
            assert p.vector is not None
            assert q.vector is not None
            np.testing.assert_allclose(p.vector, q.vector, atol=1e-5)


DRIVER = """
import sys
from pathlib import Path
from indexer.jobs import IndexJobConfig
from service.cluster.data import run_index_job_on_ray
source, data, address = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
run_index_job_on_ray(IndexJobConfig(
    source=source, collection="notes", data=data, id_field="id", text_field="body",
    batch_size=32,
), address=address)
"""


def _committed(jobs: Path) -> bool:
    """Whether a checkpoint says a batch is committed (the first one is written before)."""
    for path in jobs.glob("*.json"):
        try:
            if json.loads(path.read_text()).get("position", 0) > 0:
                return True
        except (OSError, ValueError):
            continue  # being replaced
    return False


def test_a_killed_driver_run_again_leaves_one_point_per_id(local_ray: None, tmp_path: Path) -> None:
    # Enough batches that the job is still running when its first checkpoint is seen.
    source = _write_input(tmp_path / "notes.jsonl", records=6000)
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    address = ray.get_runtime_context().gcs_address  # the driver joins this test's Ray
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(source), str(data), address], env=env
    )
    jobs = data / "collections" / "notes" / "jobs"
    try:
        deadline = time.monotonic() + 180
        while not _committed(jobs):
            assert driver.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint in 180 s"
            time.sleep(0.2)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    summary = run_index_job_on_ray(
        IndexJobConfig(
            source=source,
            collection="notes",
            data=data,
            id_field="id",
            text_field="body",
            batch_size=32,
        )
    )
    assert summary.resumed_from > 0
    with Engine(data) as engine:
        assert engine.get_collection("notes").count() == 550  # every id has a text here
