"""A collection's lifecycle on its own: a real served index over stored vectors held in an
array (no engine, no SQLite), its file in a temporary folder."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from indexer.collection.background import BackgroundWork, BatchedWork
from indexer.collection.config import CollectionConfig
from indexer.collection.lifecycle import Lifecycle
from indexer.collection.point_ids import PointIds
from indexer.collection.served_index import CLOSE_SAVE_MIN, RebuildBacklog, ServedIndex
from indexer.collection.upkeep import IndexUpkeep
from indexer.devices import Placement
from indexer.indexes import load_index
from indexer.locks import ReadWriteLock
from indexer.spec import IndexSpec

DIM = 8
VECTORS = np.random.default_rng(3).standard_normal((2000, DIM)).astype(np.float32)


class Backlog(BatchedWork):
    """Work done a batch at a time that records what was asked of it."""

    def __init__(self) -> None:
        super().__init__("backlog", "backlog failed")
        self.runs = 0
        self.stopped = False

    def step(self) -> bool:
        self.runs += 1
        return False

    def stop(self) -> None:
        self.stopped = True
        super().stop()


class Parts:
    """A lifecycle and what it works on: a store of the first ``n`` rows of VECTORS."""

    def __init__(self, folder: Path, n: int, *, background: bool = False) -> None:
        self.n = n
        self.seq = 1
        self.store_closes = 0
        self.backlog = Backlog()
        config = CollectionConfig(
            name="c", dim=DIM, index=IndexSpec(kind="auto", auto_threshold=1500)
        )
        self.upkeep = IndexUpkeep(config, folder, Placement())
        self.point_ids = PointIds((label, str(label)) for label in range(n))
        self.served = ServedIndex(self.upkeep, self.stored, self.seq, self.point_ids.live())
        # Maintenance's thread, as the collection makes it (its work: the collection's
        # optimize(), which calls the lifecycle's).
        self.maintenance = BackgroundWork("m", lambda: self.lifecycle.optimize(), "failed")
        self.lifecycle = Lifecycle(
            self.served,
            self.point_ids,
            RebuildBacklog(),
            write_lock=threading.Lock(),
            rw=ReadWriteLock(),
            seq=lambda: self.seq,
            close_store=self.close_store,
            maintenance=self.maintenance,
            background=background,
            batched=[self.backlog],
        )

    def stored(self, labels: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        labels = np.arange(self.n) if labels is None else labels
        if len(labels):
            yield labels, VECTORS[labels]

    def close_store(self) -> None:
        self.store_closes += 1

    def grow(self, n: int) -> None:
        """Commit points up to ``n`` to the store, not to the index (a rebuild's work)."""
        labels = np.arange(self.n, n)
        self.point_ids.upserted([str(i) for i in labels], labels, labels.tolist(), labels[:0])
        self.n, self.seq = n, self.seq + 1

    def saved_seq(self) -> int:
        loaded = load_index(self.upkeep.path, self.upkeep.config.metric, DIM)
        assert loaded is not None
        return loaded[1]


def test_optimize_saves_an_index_ahead_of_its_file(tmp_path: Path) -> None:
    parts = Parts(tmp_path, 100)
    parts.seq = 7
    parts.lifecycle.wrote(5)
    assert parts.served.unsaved == 5
    parts.lifecycle.optimize()
    assert parts.served.unsaved == 0
    assert parts.saved_seq() == 7
    assert parts.backlog.runs == 1


def test_optimize_rebuilds_into_the_family_the_size_needs_caught_up_with_the_store(
    tmp_path: Path,
) -> None:
    parts = Parts(tmp_path, 100)
    assert parts.served.index.family == "flat"
    parts.grow(2000)
    parts.lifecycle.optimize()
    assert parts.served.index.family == "hnsw"
    assert parts.served.index.labels().tolist() == list(range(2000))
    assert parts.saved_seq() == parts.seq


def test_a_write_that_needs_upkeep_starts_background_maintenance(tmp_path: Path) -> None:
    parts = Parts(tmp_path, 100, background=True)
    parts.lifecycle.wrote(1)  # the index needs nothing yet
    assert parts.maintenance.thread is None
    parts.grow(2000)
    parts.lifecycle.wrote(1900)
    thread = parts.maintenance.thread
    assert thread is not None
    thread.join(timeout=60)
    assert parts.served.index.family == "hnsw"


def test_close_saves_an_index_far_behind_its_file_and_closes_the_store_once(
    tmp_path: Path,
) -> None:
    parts = Parts(tmp_path, 100)
    parts.seq = 9
    parts.lifecycle.wrote(CLOSE_SAVE_MIN + 1)
    parts.lifecycle.close()
    assert parts.lifecycle.closed
    assert parts.saved_seq() == 9
    assert parts.backlog.stopped
    parts.lifecycle.close()
    parts.lifecycle.optimize()  # nothing to do once closed
    assert parts.store_closes == 1
    assert parts.backlog.runs == 0


def test_close_leaves_an_index_a_few_changes_behind_to_be_replayed_on_open(
    tmp_path: Path,
) -> None:
    parts = Parts(tmp_path, 100)
    parts.seq = 4
    parts.lifecycle.wrote(3)
    parts.lifecycle.close()
    assert parts.saved_seq() == 1
    assert parts.store_closes == 1


class SlowStore(Parts):
    """Parts whose store streams its vectors in many chunks, the first of the rebuild's
    passes announced, as a large store does: a rebuild then spans many reads."""

    CHUNK = 50

    def __init__(self, folder: Path, n: int) -> None:
        self.rebuilding = threading.Event()
        self.release = threading.Event()
        self.chunks_read = 0
        super().__init__(folder, n, background=True)

    def stored(self, labels: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if labels is not None:
            yield from super().stored(labels)
            return
        for start in range(0, self.n, self.CHUNK):
            self.chunks_read += 1
            if self.n >= 2000:  # the rebuild's: wait for the test to close meanwhile
                self.rebuilding.set()
                self.release.wait(timeout=60)
            stop = min(self.n, start + self.CHUNK)
            yield np.arange(start, stop), VECTORS[start:stop]


def test_close_gives_up_a_rebuild_under_way_rather_than_wait_for_it(tmp_path: Path) -> None:
    parts = SlowStore(tmp_path, 100)
    parts.grow(2000)
    parts.lifecycle.wrote(1900)  # maintenance starts a rebuild into HNSW
    assert parts.rebuilding.wait(timeout=60)
    closing = threading.Thread(target=parts.lifecycle.close)
    closing.start()
    while not parts.maintenance.stopping:  # close() has asked the rebuild to give up
        time.sleep(0.001)
    read = parts.chunks_read
    parts.release.set()
    closing.join(timeout=60)
    assert parts.lifecycle.closed
    # The rebuild stopped at the next chunk: it did not read the store's 2,000 points
    # twice (40 chunks each pass) before the close could go on.
    assert parts.chunks_read - read <= 1
    assert parts.served.index.family == "flat"
    assert parts.store_closes == 1
