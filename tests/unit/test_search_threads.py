"""FAISS's OpenMP threads are chosen per calling thread: a batch worker searching a small
batch uses one core (no OpenMP threads left spinning), a large batch every core, and the
choice stays in the thread that made it."""

from __future__ import annotations

import threading

import faiss

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
