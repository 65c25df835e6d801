"""FAISS's OpenMP threads are chosen per calling thread: a batch worker searching a small
batch uses one core (no OpenMP threads left spinning), a large batch every core, and the
choice stays in the thread that made it; so do additions to an index."""

from __future__ import annotations

import threading

import faiss
import numpy as np

from indexer.indexes.hnsw import HnswIndex
from indexer.metric import Metric
from indexer.spec import IndexSpec
from indexer.threads import PARALLEL_FROM_QUERIES, cores, use_cores_for


def threads_after(queries: int) -> int:
    seen: list[int] = []

    def work() -> None:
        use_cores_for(queries)
        seen.append(faiss.omp_get_max_threads())

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    return seen[0]


def test_a_small_batch_is_searched_on_one_core_and_a_large_one_on_all() -> None:
    assert threads_after(1) == 1
    assert threads_after(PARALLEL_FROM_QUERIES - 1) == 1
    assert threads_after(PARALLEL_FROM_QUERIES) == cores()


def test_the_choice_stays_in_the_thread_that_made_it() -> None:
    before = faiss.omp_get_max_threads()
    threads_after(1)
    assert faiss.omp_get_max_threads() == before


def test_an_index_adds_a_few_points_on_one_core_and_many_on_all() -> None:
    """FAISS spreads a few points over no core usefully (an HNSW graph level's points
    only past 100), while OpenMP's other threads spin."""
    index = HnswIndex.build(8, Metric.L2, IndexSpec(kind="hnsw"), np.empty((0, 8), np.float32))
    vectors = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
    seen: list[int] = []

    def work() -> None:
        index.add(np.arange(10), vectors[:10])
        seen.append(faiss.omp_get_max_threads())
        index.stage(
            np.arange(10, 10 + index.add_parallel_from), vectors[10:][: index.add_parallel_from]
        )
        seen.append(faiss.omp_get_max_threads())

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen == [1, cores()]
