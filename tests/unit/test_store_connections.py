from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from indexer.store import SqliteStore


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def read_in_threads(store: SqliteStore, count: int) -> None:
    """``count`` threads that each read, all holding a reader at once, then end."""
    all_read = threading.Barrier(count)

    def read() -> None:
        assert store.seq == 1
        all_read.wait()

    threads = [threading.Thread(target=read) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_threads_that_come_and_go_reuse_reader_connections(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "points.sqlite")
    try:
        with store.transaction() as txn:
            txn.upsert(["a"], np.zeros((1, 2), dtype=np.float32), ["{}"])
        read_in_threads(store, 8)  # the first readers open the WAL index files
        before = open_descriptors()
        for _ in range(20):
            read_in_threads(store, 8)
        assert open_descriptors() == before
        # The writer, this thread's reader (a write reads the full-text declaration), and
        # the readers alive at once.
        assert len(store._connections) <= 2 + 8
    finally:
        store.close()


def test_close_closes_the_readers_of_live_threads(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "points.sqlite")
    baseline = open_descriptors()
    done, release = threading.Event(), threading.Event()

    def read_and_wait() -> None:
        assert store.seq == 0
        done.set()
        release.wait()

    thread = threading.Thread(target=read_and_wait)
    thread.start()
    done.wait()
    store.close()
    release.set()
    thread.join()
    assert open_descriptors() < baseline
