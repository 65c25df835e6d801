"""The index a collection serves: the committed changes it follows, the batches it stages
before their commit, how far it is ahead of its file, and its replacement by a rebuilt
index that first catches up with the points written during the build.

:class:`ServedIndex` takes no lock of its own: the collection calls it under its locks (a
change to the index under the write lock, a rebuild's build and first catch-up rounds
under none), and hands it the lock to hold where a step must be taken a chunk per hold.
:class:`RebuildBacklog` is the one part that waits: it holds large upserts back while a
rebuild has too many points to catch up with.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import numpy as np

from indexer.collection.search import StoredVectors
from indexer.collection.upkeep import IndexSearch, IndexUpkeep
from indexer.indexes import FaissIndex

# After a rebuild, the points written meanwhile are added to the new index in up to this
# many rounds outside any lock, until a round adds at most CATCH_UP_LAST; what is left
# is added with writes held off (searches go on with the old index).
CATCH_UP_ROUNDS = 4
CATCH_UP_LAST = 1000
# Upserts of REBUILD_WAIT_BATCH points or more wait while a rebuild has more than this
# many points written since it began to catch up with (or a quarter of the collection,
# if more). Smaller ones never wait: single writes keep going during any rebuild.
REBUILD_BACKLOG_MIN = 50_000
REBUILD_WAIT_BATCH = 1000
# close() rewrites the index file only when more changes than this are not in it: fewer
# cost less to replay from the store on the next open than the rewrite of a large file.
CLOSE_SAVE_MIN = 1000
# An upsert adds its batch to the index a chunk per hold of the lock that searches wait
# for, each chunk sized from the index's last hold to take about STAGE_HOLD_S. One point
# may take an HNSW graph milliseconds on a busy machine, so chunks go down to one point;
# they at most double from one to the next (an index's arrays grow now and then, and a
# rate measured on a small chunk understates a large one's hold).
STAGE_HOLD_S = 0.01
STAGE_FIRST, STAGE_MIN, STAGE_MAX = 8, 1, 16_384

Live = Callable[[], np.ndarray]
"""The store's live labels, sorted, read under whatever lock the caller's step needs."""
Hold = Callable[[], AbstractContextManager[object]]
"""The lock that searches wait for, held around each step given it."""


class StagingPace:
    """Sizes the chunks an upsert stages one per lock hold (see STAGE_HOLD_S) from the
    time per point of the last hold. It is kept from one upsert to the next, so a batch
    starts at the pace of the last one rather than at a guess (the served index starts
    a new one when it is replaced: a flat index takes a point a thousand times faster
    than a graph)."""

    def __init__(self) -> None:
        self._per_point: float | None = None  # seconds, in the last hold

    def chunks(self, n: int) -> Iterator[slice]:
        """Slices of a batch of ``n`` points; :meth:`held` reports each one's hold."""
        start, last = 0, None
        while start < n:
            if self._per_point is None:
                size = STAGE_FIRST
            else:
                size = int(min(STAGE_MAX, max(STAGE_MIN, STAGE_HOLD_S / self._per_point)))
            if last is not None:
                size = min(size, 2 * last)
            stop = min(n, start + size)
            yield slice(start, stop)
            start, last = stop, stop - start

    def held(self, points: int, seconds: float) -> None:
        """A chunk of ``points`` held the lock ``seconds``."""
        self._per_point = max(seconds, 1e-7) / max(points, 1)


class ServedIndex:
    """The index that answers a collection's searches, and ``unsaved``: how many changes
    it is ahead of its file."""

    def __init__(
        self, upkeep: IndexUpkeep, stored: StoredVectors, seq: int, live: np.ndarray
    ) -> None:
        self._upkeep = upkeep
        self._stored = stored
        self.index, behind = upkeep.open(seq, live, stored)
        self.unsaved = int(behind)
        self._pace = StagingPace()

    # -- writes --------------------------------------------------------------------------

    def stage(self, labels: np.ndarray, vectors: np.ndarray, hold: Hold) -> bool:
        """Add an upsert's batch to the index before its commit, unserved, a chunk per
        ``hold``, so that searches go on between chunks however long the index takes to
        add the batch (an HNSW graph: seconds for 10,000 points). Returns False, having
        staged nothing, where the index cannot leave staged points out of its searches (on
        a GPU: it takes the batch whole at the commit)."""
        index = self.index
        if not index.supports_selector:
            return False
        try:
            for chunk in self._pace.chunks(len(labels)):
                with hold():
                    began = time.perf_counter()
                    index.stage(labels[chunk], vectors[chunk])
                    self._pace.held(chunk.stop - chunk.start, time.perf_counter() - began)
        except BaseException:
            with hold():
                index.unstage()
            raise
        return True

    def upserted(
        self,
        labels: np.ndarray,
        vectors: np.ndarray,
        replaced: np.ndarray,
        staged: bool,
        live: Live,
    ) -> None:
        """Follow a committed upsert: serve its staged batch (or add it now, if it could
        not be staged) and drop the points it replaced."""

        def change(index: FaissIndex) -> None:
            if staged:
                index.publish()
                index.remove(replaced)
            else:
                index.remove(replaced)
                index.add(labels, vectors)

        self.apply(change, live)

    def apply(self, change: Callable[[FaissIndex], object], live: Live) -> None:
        """Apply a committed change (reconciled with the store if the index fails it)."""
        self._upkeep.apply(self.index, change, live, self._stored)

    def wrote(self, changed: int) -> None:
        """Count ``changed`` points written since the index file was saved."""
        self.unsaved += changed

    # -- maintenance ---------------------------------------------------------------------

    def needs_rebuild(self, n: int) -> bool:
        return self._upkeep.needs_rebuild(self.index, n)

    def needs_calibration(self) -> bool:
        return self._upkeep.needs_calibration(self.index)

    def needs_upkeep(self, n: int) -> bool:
        """Whether background maintenance should run for ``n`` points."""
        return self._upkeep.needs_upkeep(self.index, n, self.unsaved)

    def recalibrate(self, live: np.ndarray, search: IndexSearch) -> None:
        """Calibrate the served index's knob again (see :meth:`IndexUpkeep.recalibrate`)."""
        self._upkeep.recalibrate(self.index, live, self._stored, search)
        self.unsaved = max(self.unsaved, 1)  # the file's calibration is old

    def rebuilt(
        self, n: int, live: Live, cancelled: Callable[[], bool] = lambda: False
    ) -> FaissIndex:
        """A new index built from the store's ``n`` or so points, caught up in rounds with
        the points written meanwhile, until a round adds at most CATCH_UP_LAST: what is
        left, the caller adds with writes held off (:meth:`catch_up`), then swaps it in.
        The build raises ``BuildCancelled`` once ``cancelled`` says so."""
        index = self._upkeep.build(self._stored, n, self.index.family, cancelled)
        for _ in range(CATCH_UP_ROUNDS):
            if self.catch_up(index, live()) <= CATCH_UP_LAST:
                break
        return index

    def catch_up(self, index: FaissIndex, live: np.ndarray) -> int:
        """Bring a rebuilt ``index`` in line with the ``live`` labels; how many it added."""
        return self._upkeep.reconcile(index, live, self._stored)

    def swap(self, index: FaissIndex, n: int) -> None:
        """Serve ``index`` (rebuilt, caught up, ``n`` points) in place of the old one."""
        self.index.release()
        self._upkeep.place(index)
        self.index = index
        self._pace = StagingPace()
        self.unsaved = max(1, n)  # the file holds another index

    def save(self, seq: int) -> None:
        """Save the index as of the store's ``seq`` (nothing may change it meanwhile)."""
        self._upkeep.save(self.index, seq)
        self.unsaved = 0

    @property
    def save_on_close(self) -> bool:
        """Whether the file is so far behind that closing should rewrite it."""
        return self.unsaved > CLOSE_SAVE_MIN


class RebuildBacklog:
    """The points written since a rebuild began, which it must catch up with. Large
    upserts wait while they are too many: the old index would otherwise grow beside the
    new one (twice the memory), and a bulk load outrun the rebuild for ever."""

    def __init__(self) -> None:
        self._written: int | None = None  # None: no rebuild runs
        self._changed = threading.Condition()

    @contextmanager
    def rebuilding(self) -> Iterator[None]:
        """Count the points written while the block (a rebuild) runs."""
        with self._changed:
            self._written = 0
        try:
            yield
        finally:
            with self._changed:
                self._written = None
                self._changed.notify_all()

    def wrote(self, changed: int) -> None:
        with self._changed:
            if self._written is not None:
                self._written += changed

    def wait_for_room(self, batch: int, size: Callable[[], int]) -> None:
        """Hold back an upsert of ``batch`` points, if it is large, while a rebuild has
        more to catch up with than REBUILD_BACKLOG_MIN or a quarter of the collection
        (``size`` points). The upsert's points then go into the new index."""
        if batch < REBUILD_WAIT_BATCH:
            return
        with self._changed:
            while self._written is not None and self._written > max(
                REBUILD_BACKLOG_MIN, size() // 4
            ):
                self._changed.wait()
