"""The collection's payload field indexes: their declaration, and their backfill in the
background or now.

The points written since a field was declared (or the collection opened) are indexed with
their write; :class:`PayloadIndexBuilder` reads the ones that were there before, batch by
batch, each under the collection's read lock so that no write lands in the middle of one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from indexer.collection.background import BatchedWork
from indexer.field_index import FieldType
from indexer.payload_index import parse_declaration

if TYPE_CHECKING:
    from indexer.collection import Collection

BACKFILL_BATCH = 20_000  # points read per batch, under the read lock


class PayloadIndexBuilder(BatchedWork):
    """Backfills a collection's declared payload fields, batch by batch (a thread at work
    sees the fields declared meanwhile too)."""

    def __init__(self, collection: Collection, background: bool) -> None:
        self._c = collection
        self._background = background
        self._step_lock = threading.Lock()  # a batch at a time: optimize() may run one too
        super().__init__(
            f"vecserve-{collection.name}-payload-index",
            f"collection {collection.name}: payload indexing failed",
            more=self._has_pending,  # a field declared as the thread finished
        )

    def declare(self, change: Callable[[dict[str, FieldType]], dict[str, Any]]) -> None:
        """Declare the fields ``change`` makes of those declared, then backfill them."""
        c = self._c
        with c._write_lock:
            fields = parse_declaration(change(c._payload_indexes.declared()))
            with c._transaction() as txn:
                txn.set_payload_indexes(dict(fields))
                with c._rw.write():
                    txn.commit()
                    c._payload_indexes.declare(fields)
        self.backfill()

    def backfill(self) -> None:
        """Backfill in a thread, or now when the engine runs no background work."""
        if self._background:
            self.start()
        else:
            self.run_now()

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

    def _has_pending(self) -> bool:
        with self._c._rw.read():
            return not self._c._is_closed() and bool(self._c._payload_indexes.pending())


def _count_through(labels: list[int], through: int) -> int:
    """How many of the sorted ``labels`` are at most ``through``."""
    count = len(labels)
    while count and labels[count - 1] > through:
        count -= 1
    return count
