"""What the benchmarks measure, the same way in each: recall against exact search, best
of repeated timings, queries per second and latency percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """recall@k: the share of the true neighbours found (``-1`` marks a missing hit)."""
    hits = sum(len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def exact_neighbours(
    base: np.ndarray, queries: np.ndarray, k: int, metric: str, gpu: Any = None
) -> np.ndarray:
    """The exact top-``k`` positions in ``base`` for each query: inner product on unit
    vectors for cosine, L2 otherwise; on the GPU of ``gpu`` (FAISS resources) if given."""
    import faiss

    from bench._datasets import unit_rows

    if metric == "cosine":
        base, queries = unit_rows(base), unit_rows(queries)
    index = (
        faiss.IndexFlatIP(base.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(base.shape[1])
    )
    if gpu is not None:
        index = faiss.index_cpu_to_gpu(gpu, 0, index)
    index.add(base)
    _, truth = index.search(queries, k)
    return np.asarray(truth)


def hit_ids(hits: Sequence[Sequence[Any]], k: int) -> np.ndarray:
    """The ids of the engine's hits as a [queries, k] array, ``-1`` where fewer came."""
    found = np.full((len(hits), k), -1, dtype=np.int64)
    for row, query_hits in zip(found, hits, strict=True):
        row[: len(query_hits)] = [hit.id for hit in query_hits]
    return found


def best_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The fastest of ``repeats`` runs of each, in seconds. The runs take turns, so that
    load from elsewhere on the machine falls on each of them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: min(t) for name, t in times.items()}


def best_qps(
    search: Callable[[np.ndarray], object],
    queries: np.ndarray,
    nq: int,
    rounds: int,
    round_seconds: float,
) -> float:
    """Queries per second searching batches of ``nq`` (1: one query per call), after a
    warm-up: the best of ``rounds`` rounds of at least ``round_seconds`` each."""
    batches = [queries[i : i + nq] for i in range(0, len(queries) - nq + 1, nq)]
    search(batches[0])
    best = 0.0
    for _ in range(rounds):
        done, started = 0, time.perf_counter()
        while True:
            for batch in batches:
                search(batch)
                done += len(batch)
            elapsed = time.perf_counter() - started
            if elapsed >= round_seconds:
                break
        best = max(best, done / elapsed)
    return best


def percentiles_ms(latencies: Sequence[float], *quantiles: float) -> list[float]:
    """Latency percentiles (e.g. 50, 99) in milliseconds, from latencies in seconds."""
    ms = np.asarray(latencies) * 1000
    return [float(np.percentile(ms, q)) for q in quantiles]
