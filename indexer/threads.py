"""How many cores a search, or an addition to an index, made by the calling thread may use.

FAISS parallelises with OpenMP. After each parallel region OpenMP's worker threads spin,
waiting for the next one, before they sleep: a server answering many small searches (one
query each, from concurrent requests) would keep every core busy spinning for a search
that takes tens of microseconds. A small batch is searched faster on the calling thread
alone; a large one is worth spreading over the cores. OpenMP keeps the thread count per
calling thread, so one thread's choice leaves the others' as they were.

Measured on 2 cores shared with other work (Fashion-MNIST 60k, HNSW): a batch of 64
queries cost 1.6-2x the CPU time on two OpenMP threads, and took no less time, as on one;
concurrent requests already keep the cores busy through the service's batch workers.

The same holds for small additions: FAISS adds a few points to an HNSW graph on one
thread while the others spin (20-point chunks: 2.2x the CPU time of the same on one
OpenMP thread), and one point to an IVF index took 20 ms on two busy cores, 0.05 ms on one.
"""

from __future__ import annotations

import os

import faiss

# From this many queries a batch is searched on every core.
PARALLEL_FROM_QUERIES = 128


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def use_cores_for(queries: int) -> None:
    """Let the calling thread's next FAISS searches use one core for a small batch of
    ``queries``, every core for a large one."""
    use_cores_from(queries, PARALLEL_FROM_QUERIES)


def use_cores_from(items: int, parallel_from: int) -> None:
    """Let the calling thread's next FAISS calls, on ``items`` (queries, points), use
    every core from ``parallel_from`` items on, one below."""
    faiss.omp_set_num_threads(1 if items < parallel_from else cores())
