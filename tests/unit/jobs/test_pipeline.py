"""The read / embed / write pipeline (indexer/jobs/pipeline.py): its stages overlap,
and a failing stage stops it, keeping what was done before."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from indexer.jobs.pipeline import run_pipeline


def test_reading_embedding_and_writing_overlap() -> None:
    def slow_batches() -> Iterator[int]:
        for i in range(20):
            time.sleep(0.03)
            yield i

    written: list[int] = []
    embedded_by: set[str] = set()

    def embed(batch: int) -> int:
        embedded_by.add(threading.current_thread().name)
        time.sleep(0.03)
        return batch

    def write(batch: int) -> None:
        time.sleep(0.03)
        written.append(batch)

    started = time.perf_counter()
    run_pipeline(slow_batches(), embed, write)
    elapsed = time.perf_counter() - started
    assert written == list(range(20))
    assert embedded_by == {threading.current_thread().name}
    assert elapsed < 1.2  # 1.8 s one stage after another; ~0.66 s overlapped


def test_a_failing_embedder_still_writes_the_batches_embedded_before_it() -> None:
    written: list[int] = []

    def embed(batch: int) -> int:
        if batch == 5:
            raise RuntimeError("model broke")
        return batch

    with pytest.raises(RuntimeError, match="model broke"):
        run_pipeline(iter(range(100)), embed, written.append)
    assert written == list(range(5))


def test_a_failing_writer_stops_the_pipeline() -> None:
    def write(batch: int) -> None:
        if batch == 3:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_pipeline(iter(range(10**9)), lambda b: b, write)
