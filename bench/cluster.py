"""The cluster's cost against one `vecserve serve`, on the same data and machine.

    python -m bench.cluster [--points 100000] [--seconds 4]

- Serving: the N most frequent GloVe words (50-d, cosine, the `auto` index: HNSW) behind
  `vecserve serve` (uvicorn, one process) and behind the Ray Serve router with 1, 2 and 4
  shards (no read replicas); one vector search per request (k=10), from the lean
  closed-loop load generator (`bench/load.py`) at 1, 8 and 32 clients; and one hybrid
  query per request (`/query`: the vector and a word's BM25 over the full-text field,
  50 candidates each, RRF, 10 hits) at 8 clients.
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
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._datasets import glove_by_frequency, hybrid_queries
from bench._measures import percentiles_ms
from bench._report import Run, add_output_options, describe, publish, table
from bench.service import run_http, serving
from indexer.indexes import family_for
from indexer.spec import IndexSpec
from tests.support.server import free_port
from vecserve_client import Client

CLIENTS = (1, 8, 32)
HYBRID_CLIENTS = 8


def fill(url: str, words: list[str], vectors: np.ndarray) -> float:
    started = time.perf_counter()
    with Client(url, timeout=600) as client:
        client.create_collection("glove", dim=vectors.shape[1], metric="cosine", full_text=["word"])
        payloads = [{"word": word} for word in words]
        client.upsert("glove", words, vectors, payloads=payloads, batch_size=5000)
        settle(client, vectors.shape[1])
    return time.perf_counter() - started


def settle(client: Client, dim: int, quiet_s: float = 5.0) -> None:
    """Wait until every shard (or the one node) serves the index family that ``auto``
    picks for its size, and nothing has changed for ``quiet_s``: background builds after
    a bulk load are not what is measured. A shard that crosses ``auto``'s threshold near
    the end of the load (each of 2 shards of 50,000 points does) builds its HNSW index
    after it, for longer than ``quiet_s`` on a busy machine, still serving exactly
    meanwhile; searches measured then share the CPU with the build."""
    last, since = None, time.monotonic()
    while True:
        serving = client.get_collection("glove").serving
        now = [(s["family"], s["points"]) for s in serving.get("shards", [])] or [
            (serving["family"], serving["size"])
        ]
        built = all(
            family == family_for(IndexSpec(), dim, points, gpus=0)[0].family
            for family, points in now
        )
        if now != last or not built:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.5)


def measure(
    url: str, queries: np.ndarray, words: list[str], seconds: float
) -> list[dict[str, Any]]:
    searches = [json.dumps({"vector": q.tolist(), "k": 10}).encode() for q in queries]
    hybrids = [json.dumps(body).encode() for body in hybrid_queries(queries, words)]
    runs = [("search", "/collections/glove/search", searches, c) for c in CLIENTS]
    runs.append(("hybrid query", "/collections/glove/query", hybrids, HYBRID_CLIENTS))
    cells = []
    for request, path, bodies, clients in runs:
        latencies = run_http(url, path, bodies, clients, seconds)
        # NaN when no request finished inside the cell (a machine busy with other work).
        p50, p99 = percentiles_ms(latencies, 50, 99) if latencies else (float("nan"),) * 2
        cells.append(
            {
                "request": request,
                "clients": clients,
                "qps": len(latencies) / seconds,
                "p50_ms": p50,
                "p99_ms": p99,
            }
        )
    return cells


def single_node(
    data: Path, words: list[str], vectors: np.ndarray, queries: np.ndarray, seconds: float
) -> dict[str, Any]:
    with serving(data, window_ms=2.0, device="cpu") as url:
        fill_s = fill(url, words, vectors)
        return {
            "target": "vecserve serve",
            "fill_s": fill_s,
            "cells": measure(url, queries, words, seconds),
        }


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
            "cells": measure(url, queries, words, seconds),
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

    # torch and sentence-transformers imported before either job: the first job in a
    # process would otherwise pay for their import, which the second does not.
    import sentence_transformers  # noqa: F401

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


def markdown(results: dict[str, Any]) -> list[str]:
    base = {(c["request"], c["clients"]): c for c in results["serving"][0]["cells"]}
    rows = []
    for target in results["serving"]:
        for cell in target["cells"]:
            ref = base[cell["request"], cell["clients"]]
            rows.append(
                [
                    target["target"],
                    cell["request"],
                    str(cell["clients"]),
                    f"{cell['qps']:,.0f}",
                    f"{cell['p50_ms']:.2f}",
                    f"{cell['p99_ms']:.2f}",
                    f"{cell['qps'] / ref['qps']:.2f}",
                    f"{cell['p50_ms'] / ref['p50_ms']:.2f}",
                ]
            )
    idx = results["indexing"]
    return [
        "# Cluster (Ray Serve router and shards) vs one `vecserve serve`",
        "",
        describe(results),
        "",
        f"{results['points']:,} GloVe words (50-d, cosine, auto index, the word as a "
        "full-text field); a request is one vector search (k=10) or one hybrid query (the "
        "vector and a word's BM25, 50 candidates each, RRF, 10 hits); "
        f"{results['seconds']} s a cell; ratios are to `vecserve serve` in this run.",
        "",
        *table(
            [
                "target",
                "request",
                "clients",
                "QPS",
                "p50 ms",
                "p99 ms",
                "QPS / serve",
                "p50 / serve",
            ],
            rows,
        ),
        "",
        f"Indexing {idx['records']:,} words with all-MiniLM-L6-v2 (model loads included): "
        f"local job {idx['local_records_per_s']:,.0f} records/s, Ray Data job "
        f"{idx['ray_records_per_s']:,.0f} records/s "
        f"({idx['ray_records_per_s'] / idx['local_records_per_s']:.2f}x).",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--index-records", type=int, default=20_000)
    add_output_options(parser, "cluster", quick="20,000 points, 2 s cells, 2,000 records")
    args = parser.parse_args()
    if args.quick:
        args.points, args.seconds, args.index_records = 20_000, 2.0, 2_000
    run = Run("bench.cluster")
    words, vectors = glove_by_frequency(args.points + 1000)
    queries = vectors[args.points :]
    words, vectors = words[: args.points], vectors[: args.points]
    results: dict[str, Any] = {"points": args.points, "seconds": args.seconds, "serving": []}
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
    results = {**run.header(), **results}
    publish(args, "cluster", results, markdown(results))


if __name__ == "__main__":
    main()
