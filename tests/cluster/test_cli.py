"""`vecserve cluster local` from the command line: a Ray of its own, the same HTTP API, and
a clean exit on SIGTERM."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tests.support.server import Server
from vecserve_client import Client

CLUSTER = [sys.executable, "-m", "service.cli", "cluster", "local", "--shards", "2"]


def test_cluster_local_serves_the_api_and_stops_on_sigterm(tmp_path: Path) -> None:
    server = Server(tmp_path, command=[*CLUSTER, "--replicas", "1", "--cpus", "2"], ready_s=180)
    with server, Client(server.url, timeout=60) as client:
        client.create_collection("words", dim=3, metric="l2", index="flat")
        client.upsert("words", ["a", "b", "c"], np.eye(3, dtype=np.float32))
        assert [h.id for h in client.search("words", [1.0, 0.1, 0.0], k=2)] == ["a", "b"]
        process = server.process
    assert process is not None
    assert process.returncode == 0
    assert {p.name for p in tmp_path.iterdir()} >= {"shard-0", "shard-1", "shard-0-replicas"}
