"""The collection's payload field indexes: their backfill, in the background or now.

The points written since a field was declared (or the collection opened) are indexed with
their write; :class:`PayloadIndexBuilder` reads the ones that were there before, batch by
batch, each under the collection's read lock so that no write lands in the middle of one.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from indexer.collection import Collection

log = logging.getLogger(__name__)

BACKFILL_BATCH = 20_000  # points read per batch, under the read lock


class PayloadIndexBuilder:
    """Backfills a collection's declared payload fields, in one thread at a time."""

    def __init__(self, collection: Collection) -> None:
        self._c = collection
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._step_lock = threading.Lock()  # a batch at a time: optimize() may run one too
        self._stopping = False

    def start(self) -> None:
        """Backfill in a thread, unless one is at work (it sees new fields too)."""
        with self._lock:
            if self._stopping or self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name=f"vecserve-{self._c.name}-payload-index", daemon=True
            )
            self._thread.start()

    def run_now(self) -> None:
        """Backfill every field in this thread."""
        while self.step():
            pass

    def step(self) -> bool:
        """Backfill one batch; whether any field still has points to index."""
        c = self._c
        with self._step_lock, c._rw.read():
            if c._is_closed():
                return False
            pending = c._payload_indexes.pending()
            if not pending:
                return False
            # The fields that start the furthest back, read in one pass.
            after = min(start for start, _ in pending.values())
            fields = {p: until for p, (start, until) in pending.items() if start == after}
            rows = c.store.payloads_between(after, max(fields.values()), BACKFILL_BATCH)
            labels = [label for label, _ in rows]
            payloads = [orjson.loads(payload) for _, payload in rows]
            for path, until in fields.items():
                if len(rows) == BACKFILL_BATCH and labels[-1] < until:
                    through = labels[-1]
                else:
                    through = until
                upto = _count_through(labels, through)
                c._payload_indexes.backfill(path, labels[:upto], payloads[:upto], through)
        return True

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        try:
            while not self._stopping:
                if not self.step():
                    with self._lock:  # a field declared after this step starts a thread
                        if self._stopping or not self._has_pending():
                            self._thread = None
                            return
        except Exception:
            log.exception("collection %s: payload indexing failed", self._c.name)
            with self._lock:
                self._thread = None

    def _has_pending(self) -> bool:
        with self._c._rw.read():
            return not self._c._is_closed() and bool(self._c._payload_indexes.pending())


def _count_through(labels: list[int], through: int) -> int:
    """How many of the sorted ``labels`` are at most ``through``."""
    count = len(labels)
    while count and labels[count - 1] > through:
        count -= 1
    return count
