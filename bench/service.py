"""HTTP search against in-process search, and micro-batching on against off.

    python -m bench.service [--quick] [--words N] [--texts N] [--seconds S] [--out PREFIX]

Two collections are built in a temporary data folder: ``glove`` (the N most frequent GloVe
6B words, 50-d, cosine, the ``auto`` index: HNSW from 20,000 points, calibrated) and
``words`` (the next most frequent words as texts, embedded by all-MiniLM-L6-v2 through the
``minilm`` embedder, flat). Each cell runs closed-loop clients for a few seconds: every
client sends its next request as soon as the last is answered.

- in-process: threads calling ``Collection.search`` (vectors, or ``texts=``) directly;
- HTTP: the real server under uvicorn on 127.0.0.1 (a subprocess), driven by a lean
  keep-alive load generator in another process (:mod:`bench.load`; an httpx client in
  this process cost more CPU per request than the server), with micro-batching on (the
  default window) and off (0).

Single-query cells send one search per request; batch cells 64 per request
(``/search/batch``). QPS counts queries, not requests. A wide-window server (20 ms)
shows what the adaptive flush saves a lone request. The load generator shares the
machine's cores with the server, as the in-process threads do not: on a small machine part
of the HTTP cost is the client's.
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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python bench/service.py): import bench.* from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np
import orjson

from bench._datasets import SEED, glove_by_frequency
from bench._measures import percentiles_ms
from bench._report import Run, add_output_options, describe, output_prefix, save, table
from indexer import Collection, Engine
from tests.support.server import free_port, wait_until_ready

K = 10
BATCH = 64
CLIENTS = (1, 8, 32)
WARMUP_S = 0.5
WIDE_WINDOW_MS = 20.0
UPSERT_CHUNK = 20_000
TEXT_UPSERT_CHUNK = 2_000
QUERY_POOL = 2_048


@dataclass
class Cell:
    """One measurement: a workload at a concurrency on one target."""

    target: str  # "in-process", "http (batching on)", "http (batching off)", ...
    kind: str  # "vector" or "text"
    request: str  # "single" or "batch64"
    clients: int
    requests: int
    seconds: float
    qps: float  # queries per second
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(
        cls,
        target: str,
        kind: str,
        request: str,
        clients: int,
        latencies: list[float],
        seconds: float,
    ) -> Cell:
        per_request = BATCH if request == "batch64" else 1
        p50, p99 = percentiles_ms(latencies, 50, 99)
        per_second = len(latencies) * per_request / seconds
        return cls(target, kind, request, clients, len(latencies), seconds, per_second, p50, p99)


# -- data ----------------------------------------------------------------------------------


def build(data: Path, words: list[str], vectors: np.ndarray, texts: list[str]) -> dict[str, Any]:
    """Create both collections and save their indexes; returns what it took."""
    took: dict[str, Any] = {}
    with Engine(data, background=False) as engine:
        started = time.perf_counter()
        glove = engine.create_collection("glove", dim=vectors.shape[1], metric="cosine")
        for start in range(0, len(words), UPSERT_CHUNK):
            part = slice(start, start + UPSERT_CHUNK)
            ranks = range(start, start + len(words[part]))
            glove.upsert(words[part], vectors[part], [{"rank": r} for r in ranks])
        glove.optimize()
        took["glove_build_s"] = time.perf_counter() - started
        took["glove_index"] = glove.index_info
        started = time.perf_counter()
        docs = engine.create_collection("words", embedder="minilm", index="flat")
        took["minilm_load_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for start in range(0, len(texts), TEXT_UPSERT_CHUNK):
            part = texts[start : start + TEXT_UPSERT_CHUNK]
            docs.upsert(part, texts=part)
        docs.optimize()
        took["words_embed_s"] = time.perf_counter() - started
        took["words_index"] = docs.index_info
    return took


# -- load generation -----------------------------------------------------------------------


def run_threads(call: Callable[[int], object], clients: int, seconds: float) -> list[float]:
    """Closed-loop threads calling ``call(i)`` for ``seconds`` after a warm-up; latencies."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start = time.perf_counter() + WARMUP_S
    stop = start + seconds

    def worker(c: int) -> None:
        i = c
        while (now := time.perf_counter()) < stop:
            call(i)
            if now >= start:
                latencies[c].append(time.perf_counter() - now)
            i += clients

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [x for per_client in latencies for x in per_client]


def run_http(url: str, path: str, bodies: list[bytes], clients: int, seconds: float) -> list[float]:
    """Closed-loop clients posting ``bodies`` in turn, from a load generator process of
    its own (:mod:`bench.load`); latencies of the requests after the warm-up."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as file:
        file.write(b"\n".join(bodies))
        file.flush()
        command = [sys.executable, "-m", "bench.load", url, path, file.name]
        command += [str(clients), str(seconds), str(WARMUP_S)]
        result = subprocess.run(
            command, capture_output=True, check=False, cwd=Path(__file__).parents[1]
        )
    if result.returncode != 0:
        raise RuntimeError(f"the load generator failed: {result.stderr.decode()[-500:]}")
    latencies: list[float] = json.loads(result.stdout)
    return latencies


@dataclass
class Workload:
    kind: str
    collection: str
    queries: list[Any]  # vectors (np.ndarray rows) or texts

    def search_body(self, query: Any) -> dict[str, Any]:
        if self.kind == "vector":
            return {"vector": query.tolist(), "k": K}
        return {"text": query, "k": K}

    def bodies(self, request: str) -> list[bytes]:
        if request == "single":
            return [orjson.dumps(self.search_body(q)) for q in self.queries]
        return [
            orjson.dumps(
                {
                    "searches": [
                        self.search_body(self.queries[(j + b) % len(self.queries)])
                        for b in range(BATCH)
                    ]
                }
            )
            for j in range(0, len(self.queries), BATCH)
        ]

    def path(self, request: str) -> str:
        suffix = "/search" if request == "single" else "/search/batch"
        return f"/collections/{self.collection}{suffix}"


def search_calls(collection: Collection, workload: Workload) -> dict[str, Callable[[int], object]]:
    """The in-process calls behind a single-query and a batch request."""
    queries, n = workload.queries, len(workload.queries)

    def single(i: int) -> object:
        if workload.kind == "vector":
            return collection.search(queries[i % n], k=K)
        return collection.search(texts=[queries[i % n]], k=K)

    def batch(i: int) -> object:
        chosen = [queries[(i * BATCH + b) % n] for b in range(BATCH)]
        if workload.kind == "vector":
            return collection.search(np.stack(chosen), k=K)
        return collection.search(texts=chosen, k=K)

    return {"single": single, "batch64": batch}


def in_process_cells(data: Path, workloads: list[Workload], seconds: float) -> list[Cell]:
    cells = []
    with Engine(data, background=False) as engine:
        for workload in workloads:
            calls = search_calls(engine.get_collection(workload.collection), workload)
            calls["single"](0)  # loads the model for texts
            for request, call in calls.items():
                for clients in CLIENTS:
                    latencies = run_threads(call, clients, seconds)
                    cell = Cell.of(IN_PROCESS, workload.kind, request, clients, latencies, seconds)
                    cells.append(cell)
                    print_cell(cell)
    return cells


@contextmanager
def serving(data: Path, window_ms: float, device: str) -> Iterator[str]:
    """The service under uvicorn on 127.0.0.1 in a subprocess; yields its URL."""
    port = free_port()
    env = {
        **os.environ,
        "VECSERVE_DATA_DIR": str(data),
        "VECSERVE_DEVICE": device,
        "VECSERVE_BATCH_WINDOW_MS": str(window_ms),
    }
    command = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, timeout_s=120)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def http_cells(
    url: str,
    target: str,
    workloads: list[Workload],
    seconds: float,
    only: set[tuple[str, str, int]] | None = None,
) -> list[Cell]:
    """Every workload x request x clients cell (or only those in ``only``)."""
    cells = []
    for workload in workloads:
        if workload.kind == "text":  # load the model before timing
            httpx.post(
                f"{url}{workload.path('single')}",
                content=workload.bodies("single")[0],
                headers={"content-type": "application/json"},
                timeout=120,
            )
        for request in ("single", "batch64"):
            bodies = workload.bodies(request)
            for clients in CLIENTS:
                if only is not None and (workload.kind, request, clients) not in only:
                    continue
                latencies = run_http(url, workload.path(request), bodies, clients, seconds)
                cell = Cell.of(target, workload.kind, request, clients, latencies, seconds)
                cells.append(cell)
                print_cell(cell)
    return cells


def print_cell(cell: Cell) -> None:
    print(
        f"{cell.target:<22} {cell.kind:<6} {cell.request:<7} {cell.clients:>3} clients: "
        f"{cell.qps:>9,.0f} QPS  p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms",
        flush=True,
    )


# -- report --------------------------------------------------------------------------------

IN_PROCESS = "in-process"
ON = "http (batching on)"
OFF = "http (batching off)"
WIDE = f"http (window {WIDE_WINDOW_MS:g} ms)"


def comparison_rows(cells: list[Cell]) -> list[list[str]]:
    by = {(c.target, c.kind, c.request, c.clients): c for c in cells}
    rows = []
    for kind in ("vector", "text"):
        for request in ("single", "batch64"):
            for clients in CLIENTS:
                local = by.get((IN_PROCESS, kind, request, clients))
                on = by.get((ON, kind, request, clients))
                off = by.get((OFF, kind, request, clients))
                if local is None or on is None:
                    continue
                row = [kind, request, str(clients)]
                row += [f"{local.qps:,.0f}", f"{local.p50_ms:.2f}", f"{local.p99_ms:.2f}"]
                row += [f"{on.qps:,.0f}", f"{on.p50_ms:.2f}", f"{on.p99_ms:.2f}"]
                row += [f"{on.qps / local.qps:.2f}"]
                if off is not None:
                    row += [f"{off.qps:,.0f}", f"{off.p50_ms:.2f}", f"{off.p99_ms:.2f}"]
                    row += [f"{on.qps / off.qps:.2f}"]
                else:
                    row += ["", "", "", ""]
                rows.append(row)
    return rows


COLUMNS = [
    "kind",
    "request",
    "clients",
    "in-process QPS",
    "p50 ms",
    "p99 ms",
    "HTTP QPS (batching on)",
    "p50 ms",
    "p99 ms",
    "HTTP / in-process",
    "HTTP QPS (batching off)",
    "p50 ms",
    "p99 ms",
    "on / off",
]


LONE_COLUMNS = ["target", "kind", "p50 ms", "p99 ms", "QPS"]


def lone_rows(cells: list[Cell]) -> list[list[str]]:
    rows = []
    for target in (IN_PROCESS, OFF, ON, WIDE):
        for kind in ("vector", "text"):
            for cell in cells:
                if (cell.target, cell.kind, cell.request, cell.clients) == (
                    target,
                    kind,
                    "single",
                    1,
                ):
                    rows.append(
                        [
                            target,
                            kind,
                            f"{cell.p50_ms:.2f}",
                            f"{cell.p99_ms:.2f}",
                            f"{cell.qps:,.0f}",
                        ]
                    )
    return rows


def markdown(report: dict[str, Any], cells: list[Cell]) -> list[str]:
    setup = report["setup"]
    wide_32 = next(
        (
            c
            for c in cells
            if (c.target, c.kind, c.request, c.clients) == (WIDE, "vector", "single", 32)
        ),
        None,
    )
    lines = [
        "# HTTP service vs in-process search; micro-batching on vs off",
        "",
        describe(report),
        "",
        f"- `vector`: {setup['glove_words']:,} GloVe words (50-d, cosine), index "
        f"{setup['glove_index']['family']} "
        + " ".join(f"{k}={v}" for k, v in setup["glove_index"]["default_params"].items())
        + " "
        f"(built in {setup['glove_build_s']:.0f} s). `text`: {setup['texts']:,} further "
        f"GloVe words embedded by all-MiniLM-L6-v2 (`minilm`, 384-d, flat; "
        f"{setup['words_embed_s']:.0f} s to embed); queries are other words.",
        f"- k = {K}, payloads returned; single = one search per request, batch64 = "
        f"{BATCH} searches per `/search/batch` request. QPS counts queries; p50/p99 are "
        f"per request. Closed-loop clients, {report['seconds']:g} s per cell after a "
        f"{WARMUP_S:g} s warm-up.",
        f"- Batching on: the default window ({report['window_ms']:g} ms, max_batch "
        f"{report['max_batch']}); off: window 0. In-process: threads calling "
        "`Collection.search` on the same collections, before the server starts.",
        "- HTTP load comes from a lean keep-alive client in a process of its own "
        "(`bench/load.py`), which shares the cores with the server: part of the HTTP "
        "cost is the client's.",
        "- Cells whose requests take seconds (text batch64 with 8 or 32 clients) complete "
        "only a few requests each: coarse figures.",
        "",
        *table(COLUMNS, comparison_rows(cells)),
        "",
        "## A lone client (one request at a time)",
        "",
        f"The adaptive flush sends a request that finds its collection idle at once. With "
        f"a {WIDE_WINDOW_MS:g} ms window a lone request would otherwise wait "
        f"{WIDE_WINDOW_MS:g} ms.",
        "",
        *table(LONE_COLUMNS, lone_rows(cells)),
    ]
    if wide_32 is not None:
        lines += [
            "",
            f"With the {WIDE_WINDOW_MS:g} ms window, 32 single-query vector clients: "
            f"{wide_32.qps:,.0f} QPS, p50 {wide_32.p50_ms:.2f} ms, p99 {wide_32.p99_ms:.2f} ms.",
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=200_000, help="GloVe words to index")
    parser.add_argument("--texts", type=int, default=20_000, help="words embedded as texts")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--device", choices=["auto", "cpu"], default="cpu")
    add_output_options(parser, "service", quick="small data, short cells")
    args = parser.parse_args()
    if args.quick:
        args.words, args.texts, args.seconds = 30_000, 2_000, 1.0
    out = output_prefix(args, "service")
    run = Run("bench.service")
    from service.settings import Settings

    defaults = Settings()
    n_queries = min(QUERY_POOL, args.texts)
    words, vectors = glove_by_frequency(args.words + args.texts + n_queries)
    rng = np.random.default_rng(SEED)
    glove_words, glove_vectors = words[: args.words], vectors[: args.words]
    texts = words[args.words : args.words + args.texts]
    # Queries: perturbed indexed vectors; words that are not in the text collection.
    chosen = rng.choice(args.words, QUERY_POOL, replace=False)
    noise = rng.standard_normal((QUERY_POOL, vectors.shape[1])).astype(np.float32) * 0.1
    vector_queries = list(glove_vectors[chosen] + noise)
    text_queries = words[args.words + args.texts :]
    workloads = [
        Workload("vector", "glove", vector_queries),
        Workload("text", "words", text_queries),
    ]
    data = Path(tempfile.mkdtemp(prefix="vecserve-bench-"))
    try:
        print(f"building {args.words:,} GloVe vectors and {args.texts:,} texts ...", flush=True)
        took = build(data, glove_words, glove_vectors, texts)
        print(f"built: {took}", flush=True)
        cells = in_process_cells(data, workloads, args.seconds)
        with serving(data, defaults.batch_window_ms, args.device) as url:
            cells += http_cells(url, ON, workloads, args.seconds)
        with serving(data, 0.0, args.device) as url:
            cells += http_cells(url, OFF, workloads, args.seconds)
        with serving(data, WIDE_WINDOW_MS, args.device) as url:
            only = {("vector", "single", 1), ("vector", "single", 32)}
            cells += http_cells(url, WIDE, workloads[:1], args.seconds, only)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    print()
    print("\n".join(table(COLUMNS, comparison_rows(cells))))
    print()
    print("\n".join(table(LONE_COLUMNS, lone_rows(cells))))
    print(f"\n{run.seconds:.0f} s in all", flush=True)
    if out is None:
        return
    report = {
        **run.header(),
        "device": args.device,
        "seconds": args.seconds,
        "window_ms": defaults.batch_window_ms,
        "max_batch": defaults.max_batch,
        "setup": {"glove_words": args.words, "texts": args.texts, **took},
        "cells": [asdict(c) for c in cells],
    }
    save(out, report, markdown(report, cells))


if __name__ == "__main__":
    main()
