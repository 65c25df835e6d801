"""Readers run while one writer writes, and never see half a batch."""

from __future__ import annotations

import threading
import time

import numpy as np

from indexer import Engine

DIM = 8


def test_searches_never_see_a_half_applied_batch(engine: Engine) -> None:
    col = engine.create_collection("c", dim=DIM, metric="l2", index="flat")
    # Every batch writes 50 points that all carry the batch number, over the same 50 ids.
    # A reader that sees two batch numbers at once has seen half of a batch.
    ids = list(range(50))
    base = np.random.default_rng(0).standard_normal((50, DIM)).astype(np.float32)
    col.upsert(ids, base, [{"batch": 0}] * 50)
    stop = time.monotonic() + 2.0
    errors: list[str] = []
    writes = 0

    def writer() -> None:
        nonlocal writes
        batch = 1
        while time.monotonic() < stop:
            col.upsert(ids, base + batch, [{"batch": batch}] * 50)
            batch += 1
        writes = batch - 1

    def reader() -> None:
        while time.monotonic() < stop:
            hits = col.search(base[:1], k=50)[0]
            batches = {h.payload["batch"] for h in hits if h.payload is not None}
            if len(hits) != 50 or len(batches) != 1:
                errors.append(f"{len(hits)} hits from batches {sorted(batches)}")
            if col.count() != 50:
                errors.append(f"count {col.count()}")

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    assert writes > 10


def test_concurrent_writers_are_serialised_and_all_acknowledged(engine: Engine) -> None:
    col = engine.create_collection("w", dim=DIM, index="hnsw")
    rng = np.random.default_rng(1)

    def write(worker: int) -> None:
        for batch in range(20):
            ids = [f"{worker}-{batch}-{i}" for i in range(10)]
            col.upsert(ids, rng.standard_normal((10, DIM)).astype(np.float32))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert col.count() == 4 * 20 * 10
    assert col.index_info["size"] == col.count()
