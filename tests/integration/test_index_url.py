"""``vecserve index --url``: a job that embeds here and sends its points to a running
service (the real one, under uvicorn on 127.0.0.1) over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import NewServer, Server

pytest.importorskip("sentence_transformers")

ROOT = Path(__file__).resolve().parents[2]
KEY = "index-job-key-0123456789"
# Limits small enough that a job's batch is over them: 64 points per upsert, 1 KiB payloads.
LIMITS = {"VECSERVE_MAX_POINTS_PER_UPSERT": "64", "VECSERVE_MAX_PAYLOAD_BYTES": "1024"}
TOPICS = ["volcanoes", "jazz guitar", "tax law", "sourdough bread", "comets", "chess openings"]


def write_texts(path: Path, n: int) -> list[dict[str, Any]]:
    records = [
        {"id": i, "text": f"Note {i} on {TOPICS[i % len(TOPICS)]}, part {i // 6}.", "n": i}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def index(
    cwd: Path, url: str, collection: str, *args: str, key: str | None = KEY
) -> subprocess.Popen[str]:
    """``vecserve index docs.jsonl --url URL`` run from ``cwd``, the key from the env."""
    # One torch thread: a second one spin-waiting for a busy core slows the model down.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if key is not None:
        env["VECSERVE_API_KEY"] = key
    command = ["index", "docs.jsonl", "--collection", collection, "--url", url]
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", *command, "--text-field", "text", *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=240)
    return process.returncode, out, err


def indexed(cwd: Path, url: str, collection: str, *args: str) -> str:
    """The output of a job that :func:`index` runs to success (else its errors)."""
    code, out, err = finish(index(cwd, url, collection, *args))
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def service(new_server: NewServer) -> Iterator[Server]:
    with new_server({"VECSERVE_API_KEYS": KEY, **LIMITS}) as server:
        yield server


@pytest.fixture(scope="module")
def http(service: Server) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=60) as client:
        yield client


@pytest.mark.slow
def test_a_job_fills_a_collection_on_the_service_and_a_rerun_changes_nothing(
    tmp_path: Path, service: Server, http: httpx.Client
) -> None:
    records = write_texts(tmp_path / "docs.jsonl", 200)
    out = indexed(tmp_path, service.url, "notes", "--payload-fields", "n")
    assert out.startswith(f"indexed 200 records into 'notes' on {service.url}")

    info = http.get("/collections/notes").json()
    assert (info["count"], info["dim"], info["embedder"]) == (200, 384, "minilm")
    got = http.post("/collections/notes/points/get", json={"ids": [17], "with_vector": True})
    vector = got.json()["points"][0]["vector"]
    hits = http.post("/collections/notes/search", json={"vector": vector, "k": 3})
    assert hits.json()["hits"][0]["id"] == 17
    assert hits.json()["hits"][0]["payload"] == {"n": 17}
    # Created with the job's embedder, the collection embeds text queries as the job did.
    by_text = http.post("/collections/notes/search", json={"text": records[17]["text"], "k": 1})
    assert by_text.json()["hits"][0]["id"] == 17

    started = time.monotonic()
    out = indexed(tmp_path, service.url, "notes", "--payload-fields", "n")
    assert out.startswith("nothing to do")
    assert time.monotonic() - started < 20  # no model was loaded
    assert http.get("/collections/notes").json()["count"] == 200

    # Dropped on the service, the collection is filled anew: the finished job's checkpoint,
    # kept here, counts points that are gone. So too when it was made again meanwhile
    # and holds other points: the checkpoint names the collection it was written for.
    for remade in (False, True):
        assert http.delete("/collections/notes").is_success
        if remade:
            http.put("/collections/notes", json={"embedder": "minilm"}).raise_for_status()
            point = {"id": "other", "text": "another note"}
            http.put("/collections/notes/points", json={"points": [point]}).raise_for_status()
        out = indexed(tmp_path, service.url, "notes", "--payload-fields", "n")
        assert out.startswith(f"indexed 200 records into 'notes' on {service.url}")
        assert http.get("/collections/notes").json()["count"] == 200 + remade


@pytest.mark.slow
def test_a_rerun_that_keeps_the_source_rewrites_payloads_on_the_service_without_embedding(
    tmp_path: Path, service: Server, http: httpx.Client
) -> None:
    records = write_texts(tmp_path / "docs.jsonl", 100)
    indexed(tmp_path, service.url, "kept", "--payload-fields", "n")
    asked = {"ids": [17], "with_vector": True}
    before = http.post("/collections/kept/points/get", json=asked).json()["points"][0]

    started = time.monotonic()
    out = indexed(tmp_path, service.url, "kept", "--payload-fields", "n", "--store-source")
    assert out.startswith(f"indexed 100 records into 'kept' on {service.url}")
    assert "100 of them kept the vector an earlier run embedded" in out
    assert "nothing embedded; the service builds its index itself" in out
    assert time.monotonic() - started < 20  # no model was loaded
    after = http.post("/collections/kept/points/get", json=asked).json()["points"][0]
    assert after["payload"] == {"n": 17, "_source": {"text": records[17]["text"]}}
    assert after["vector"] == before["vector"]
    assert http.get("/collections/kept").json()["count"] == 100


@pytest.mark.slow
def test_batches_over_the_services_limits_are_split_and_an_oversized_point_rejected(
    tmp_path: Path, service: Server, http: httpx.Client
) -> None:
    records = write_texts(tmp_path / "docs.jsonl", 150)
    records[40]["n"] = "x" * 2000  # a payload over the service's 1 KiB
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = indexed(tmp_path, service.url, "limits", "--payload-fields", "n")
    assert "indexed 149 records" in out
    assert "rejected 1" in out
    assert http.get("/collections/limits").json()["count"] == 149
    got = http.post("/collections/limits/points/get", json={"ids": [39, 40, 41]})
    assert got.json()["points"] == [
        {"id": 39, "payload": {"n": 39}},
        {"id": 41, "payload": {"n": 41}},
    ]
    (rejects,) = (tmp_path / ".vecserve" / "jobs").glob("*.rejects.jsonl")
    (reject,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert (reject["position"], reject["id"]) == (40, 40)
    assert "over the limit" in reject["reason"]


def test_a_wrong_api_key_fails_with_exit_1_and_a_clear_message(
    tmp_path: Path, service: Server, http: httpx.Client
) -> None:
    write_texts(tmp_path / "docs.jsonl", 10)
    code, _, err = finish(index(tmp_path, service.url, "refused", key="not-the-key-0123456789"))
    assert code == 1
    assert err.startswith("vecserve index: error: the vecserve service at")
    assert "Unauthorized (401)" in err
    assert "--api-key" in err
    assert "Traceback" not in err
    assert "refused" not in http.get("/collections").json()["collections"]


@pytest.mark.slow
def test_a_job_started_before_its_service_waits_for_it(
    tmp_path: Path, new_server: NewServer
) -> None:
    write_texts(tmp_path / "docs.jsonl", 30)
    server = new_server(data_dir=tmp_path / "data")
    job = index(tmp_path, server.url, "late", key=None)
    time.sleep(1.5)  # the job's first requests find no service and are retried
    assert job.poll() is None
    with server:
        code, out, err = finish(job)
        assert code == 0, err
        assert out.startswith("indexed 30 records")
        count = httpx.get(f"{server.url}/collections/late", timeout=30).json()["count"]
        assert count == 30
