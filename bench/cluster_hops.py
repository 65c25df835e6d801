"""Where a search through the cluster spends its time, hop by hop.

    python -m bench.cluster_hops [--points 20000] [--requests 300] [--shards 1 2]

For each cluster size (Ray Serve router and shards, no read replicas, on 127.0.0.1), one
client sends ``--requests`` requests of each kind, one after another, and the median and
p99 of each kind are reported:

- ``proxy only``: an HTTP request to a deployment that answers at once (Serve's proxy and
  one replica hop, nothing of ours);
- ``proxy, body read``: the same deployment reading the request's body first, as every
  ASGI app does (Serve's replica fetches it from the proxy: one more actor call);
- ``shard call``: a call from this process to shard 0's deployment handle, a search of one
  vector (k=10, with payloads), as the router makes it (one handle hop and the shard's work);
- ``shard no-op``: a call to shard 0 that does nothing (the handle hop alone);
- ``engine``: the same search on an in-process engine with the same points (the shard's
  own work, without Ray);
- ``cluster search``: ``POST /collections/glove/search`` through the proxy and the router
  (everything);
- ``cluster hybrid query``: ``POST /collections/glove/query``, the vector and the word's
  BM25, 50 candidates each, RRF, 10 hits with their payloads.

The router's own share is what ``cluster search`` costs beyond ``proxy, body read`` and
the shard call it makes. For the cluster searches, the CPU time each process of the Ray
cluster (and this one, the client) spent per request is reported too: on a machine with
few cores it, more than any wait, is what bounds throughput.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from bench._datasets import glove_by_frequency, hybrid_queries
from bench._measures import percentiles_ms
from bench._report import Run, add_output_options, describe, publish, table
from indexer import Engine
from tests.support.server import free_port
from vecserve_client import Client


def timed(call: Callable[[int], Any], requests: int) -> list[float]:
    """Seconds each of ``requests`` calls took (after a few unmeasured ones)."""
    for i in range(10):
        call(i)
    latencies = []
    for i in range(requests):
        started = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - started)
    return latencies


def process_cpu() -> dict[int, tuple[str, float]]:
    """Each process descending from this one (Ray's, when it started the cluster), and this
    one: its name and CPU seconds so far."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, fields = (entry / "stat").read_text().rsplit(")", 1)
            command = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        values = fields.split()
        name = command if command.startswith("ray::") else head.split("(", 1)[1]
        stats[int(entry.name)] = (
            int(values[1]),
            name,
            (int(values[11]) + int(values[12])) / tick,
        )
    family = {os.getpid()}
    for _ in range(4):  # the cluster is at most 3 generations below
        family |= {pid for pid, (parent, _, _) in stats.items() if parent in family}
    return {pid: stats[pid][1:] for pid in family if pid in stats}


def cpu_per_request(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], requests: int
) -> dict[str, float]:
    """Milliseconds of CPU per request, by process name (summed over same-named ones)."""
    spent: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        used = seconds - before.get(pid, (name, 0.0))[1]
        if used > 0:
            spent[name] = spent.get(name, 0.0) + used * 1000 / requests
    return dict(sorted(spent.items(), key=lambda item: -item[1]))


def summary(kind: str, latencies: list[float]) -> dict[str, Any]:
    p50, p99 = percentiles_ms(latencies, 50, 99)
    return {"kind": kind, "requests": len(latencies), "p50_ms": p50, "p99_ms": p99}


def engine_cells(
    folder: Path, words: list[str], vectors: np.ndarray, queries: np.ndarray, requests: int
) -> dict[str, Any]:
    with Engine(folder, device="cpu") as engine:
        collection = engine.create_collection("glove", vectors.shape[1], "cosine")
        collection.upsert(words, vectors, [{"word": w} for w in words])
        collection.optimize()
        latencies = timed(
            lambda i: collection.search(queries[i % len(queries)][None], 10), requests
        )
    return summary("engine", latencies)


def cluster_cells(
    data: Path,
    shards: int,
    words: list[str],
    vectors: np.ndarray,
    queries: np.ndarray,
    requests: int,
) -> list[dict[str, Any]]:
    import ray
    from ray import serve

    from service.cluster import serving
    from service.settings import Settings

    @serve.deployment(name="ping", ray_actor_options={"num_cpus": 0})
    class Ping:
        async def __call__(self, request: Any) -> bytes:
            if request.url.path.endswith("/body"):
                await request.body()
            return b"{}"

    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    try:
        port = free_port()
        serving.run(Settings(data_dir=data, host="127.0.0.1", port=port, device="cpu"), shards, 0)
        serve.run(Ping.bind(), name="ping", route_prefix="/ping")
        url = f"http://127.0.0.1:{port}"
        with Client(url, timeout=600) as client:
            client.create_collection(
                "glove", dim=vectors.shape[1], metric="cosine", full_text=["word"]
            )
            client.upsert(
                "glove", words, vectors, payloads=[{"word": w} for w in words], batch_size=5000
            )
        shard = serve.get_deployment_handle("shard-0", serving.APP_NAME)
        bodies = [orjson.dumps({"vector": q.tolist(), "k": 10}) for q in queries]
        cells = []
        with httpx.Client(
            base_url=url, timeout=60, headers={"content-type": "application/json"}
        ) as http:
            cells.append(
                summary("proxy only", timed(lambda i: http.post("/ping").content, requests))
            )
            cells.append(
                summary(
                    "proxy, body read",
                    timed(lambda i: http.post("/ping/body", content=bodies[0]).content, requests),
                )
            )
            cells.append(
                summary(
                    "shard no-op",
                    timed(lambda i: shard.where.remote().result(timeout_s=60), requests),
                )
            )

            def shard_search(i: int) -> Any:
                query = queries[i % len(queries)][None]
                args = ("glove", "search", (query, 10), {"with_payload": True})
                return shard.collection_call.remote(*args).result(timeout_s=60)

            cells.append(summary("shard call", timed(shard_search, requests)))

            def search(i: int) -> None:
                response = http.post("/collections/glove/search", content=bodies[i % len(bodies)])
                response.raise_for_status()

            before = process_cpu()
            cells.append(summary("cluster search", timed(search, requests)))
            cells[-1]["cpu_ms"] = cpu_per_request(before, process_cpu(), requests + 10)
            hybrids = [orjson.dumps(body) for body in hybrid_queries(queries, words)]

            def hybrid(i: int) -> None:
                response = http.post("/collections/glove/query", content=hybrids[i % len(hybrids)])
                response.raise_for_status()

            cells.append(summary("cluster hybrid query", timed(hybrid, requests)))
        return [{"shards": shards, **cell} for cell in cells]
    finally:
        serve.shutdown()
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2])
    add_output_options(parser, "cluster_hops", quick="5,000 points, 100 requests, 1 shard")
    args = parser.parse_args()
    if args.quick:
        args.points, args.requests, args.shards = 5_000, 100, [1]
    run = Run("bench.cluster_hops")
    words, vectors = glove_by_frequency(args.points + 200)
    queries = vectors[args.points :]
    words, vectors = words[: args.points], vectors[: args.points]
    cells: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cells.append(
            {"shards": 0, **engine_cells(root / "engine", words, vectors, queries, args.requests)}
        )
        for shards in args.shards:
            cells.extend(
                cluster_cells(root / f"c{shards}", shards, words, vectors, queries, args.requests)
            )
            print(cells[-6:], flush=True)
    results = {**run.header(), "points": args.points, "cells": cells}
    rows = [
        [str(c["shards"]), c["kind"], f"{c['p50_ms']:.2f}", f"{c['p99_ms']:.2f}"] for c in cells
    ]
    publish(
        args,
        "cluster_hops",
        results,
        [
            "# A search through the cluster, hop by hop",
            "",
            describe(results),
            "",
            f"{args.points:,} GloVe words (50-d, cosine); one client, {args.requests} requests "
            "of each kind, one after another (shards 0: the in-process engine).",
            "",
            *table(["shards", "kind", "p50 ms", "p99 ms"], rows),
            "",
            "CPU per cluster search, by process (ms; this process is the client):",
            "",
            *table(
                ["shards", "process", "CPU ms / request"],
                [
                    [str(c["shards"]), name, f"{ms:.2f}"]
                    for c in cells
                    if "cpu_ms" in c
                    for name, ms in c["cpu_ms"].items()
                    if ms >= 0.05
                ],
            ),
        ],
    )


if __name__ == "__main__":
    main()
