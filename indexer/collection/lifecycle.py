"""A collection's lifecycle: the maintenance that keeps its served index right while it is
open (in the background after writes, or at once on ``optimize()``), then its close.

Maintenance moves the index to the right family (a rebuild, caught up with the points
written meanwhile), recalibrates its knob as it grows, saves it, and runs the work done a
batch at a time (the full-text and payload backlogs). :class:`Lifecycle` takes the locks
that the collection makes and hands it, in the collection's order: the write lock (one
writer at a time) before the readers-writer lock that searches share.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from indexer.collection.background import BackgroundWork, BatchedWork
from indexer.collection.point_ids import PointIds
from indexer.collection.served_index import RebuildBacklog, ServedIndex
from indexer.collection.upkeep import BuildCancelled
from indexer.locks import ReadWriteLock
from indexer.spec import SearchParams


class Lifecycle:
    """Maintenance and close of one collection; ``closed`` once closed."""

    def __init__(
        self,
        served: ServedIndex,
        point_ids: PointIds,
        backlog: RebuildBacklog,
        *,
        write_lock: threading.Lock,
        rw: ReadWriteLock,
        seq: Callable[[], int],
        close_store: Callable[[], None],
        maintenance: BackgroundWork,
        background: bool,
        batched: Sequence[BatchedWork],
    ) -> None:
        """``seq``: the store's sequence number now; ``close_store``: closes the store;
        ``maintenance``: the thread of background maintenance (it calls the collection's
        ``optimize()``, which calls :meth:`optimize`)."""
        self._served = served
        self._point_ids = point_ids
        self._backlog = backlog
        self._write_lock, self._rw = write_lock, rw
        self._seq, self._close_store = seq, close_store
        self._maintenance = maintenance
        self._background = background
        self._batched = batched
        self._optimize_lock = threading.Lock()
        self._closing = threading.Event()  # a rebuild under way gives up: see close()
        self.closed = False

    def wrote(self, changed: int) -> None:
        """Count a write of ``changed`` points; start maintenance if the index needs it."""
        self._backlog.wrote(changed)
        self._served.wrote(changed)
        if self._background and self._served.needs_upkeep(len(self._point_ids)):
            self._maintenance.start()

    def optimize(self) -> None:
        """Do now what maintenance would do in the background (see the module)."""
        with self._optimize_lock:
            if self.closed:
                return
            if self._served.needs_rebuild(len(self._point_ids)):
                if not self._rebuild():
                    return
            elif self._served.needs_calibration():
                self._served.recalibrate(self._live(), self._search_labels)
            if self._served.unsaved:
                # Writes wait meanwhile, searches do not: under the read lock, a write
                # waiting for it would queue every search behind it for the whole save.
                with self._write_lock:
                    self._save_now()
        for work in self._batched:
            work.run_now()

    def _rebuild(self) -> bool:
        """Build a new index from the store and serve it; False if the collection closed
        meanwhile. Searches and writes go on with the old index all along: the points
        written during the build are added to the new one outside any lock, in rounds,
        and only the last few with writes held off (searches still go on); the lock that
        searches wait for is held for the swap alone."""
        with self._backlog.rebuilding():
            try:
                index = self._served.rebuilt(len(self._point_ids), self._live, self._closing.is_set)
            except BuildCancelled:
                return False
            with self._write_lock:  # no write starts: the index catches up with the last
                if self.closed:
                    return False
                self._served.catch_up(index, self._point_ids.live())
                with self._rw.write():
                    self._served.swap(index, len(self._point_ids))
            return True

    def _live(self) -> np.ndarray:
        """The live labels (a short hold of the read lock)."""
        with self._rw.read():
            return self._point_ids.live()

    def _search_labels(self, queries: np.ndarray, k: int, params: SearchParams) -> np.ndarray:
        """The serving index's labels for ``queries`` (a short hold of the read lock)."""
        with self._rw.read():
            return self._served.index.search(queries, k, params, None)[1]

    def _save_now(self) -> None:
        """Save the index (write lock held: nothing changes it)."""
        if self.closed:  # saved by close(); the folder may hold another collection now
            return
        self._served.save(self._seq())

    def close(self) -> None:
        """Finish background work, save the index if it is far behind its file (a few
        changes are cheaper to replay from the store on the next open than a rewrite of
        the whole file), and close the store, once the writes and searches in flight are
        done. A rebuild under way is given up: the index that serves now is whole, and
        the next open judges again whether it needs one."""
        self._closing.set()
        self._maintenance.stop()  # no maintenance starts from here on
        for work in self._batched:
            work.stop()
        with self._write_lock:  # no write is running, and none starts
            if self.closed:
                return
            if self._served.save_on_close:
                self._save_now()
            with self._rw.write():  # the searches in flight are done
                self.closed = True
                self._served.index.release()
                self._close_store()
