"""A store's SQLite connections: one writer, and a reader lent to each thread that reads.

Thread pools retire idle threads and start new ones for the next burst, so a thread's
reader connection goes back to the store when the thread ends and the next new thread
takes it: the connections (two descriptors each) number at most the readers that were ever
alive at once. Closing them instead would not do: while any connection to the database
holds a lock (in WAL mode one always does), SQLite keeps a closed connection's descriptor
open for reuse, and concurrent opens outrun the reuse.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from pathlib import Path

from indexer.errors import CollectionNotFound

# The write-ahead log is copied into the database (a checkpoint) once it is past this
# size, when a write transaction ends (SqliteStore.transaction), not in its COMMIT, where
# SQLite's automatic checkpoint runs: the collection commits under the lock that searches
# wait for, and a 10,000-point batch has 20 MiB to copy and fsync (150-250 ms on 2 busy
# cores).
WAL_CHECKPOINT_BYTES = 4 << 20


class Connections:
    """The open connections to one database; ``len()`` is how many there are."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._open: set[sqlite3.Connection] = set()
        self._idle_readers: list[sqlite3.Connection] = []  # lent to no live thread
        self._lock = threading.Lock()
        self._closed = False
        self.writer = self._connect()

    def __len__(self) -> int:
        return len(self._open)

    def check_open(self) -> None:
        """A closed store stays closed: a thread without a connection yet must not open
        one to the path, where another collection of the same name may live by now."""
        if self._closed:
            raise CollectionNotFound("the collection was dropped (or its engine closed)")

    @property
    def reader(self) -> sqlite3.Connection:
        """This thread's reader connection (lent to it on its first read)."""
        reader: _LentReader | None = getattr(self._local, "reader", None)
        if reader is None:
            self.check_open()
            with self._lock:
                idle = self._idle_readers.pop() if self._idle_readers else None
            reader = _LentReader(idle or self._connect())
            # A thread's locals are dropped when it ends: the connection comes back then.
            weakref.finalize(
                reader, _take_back, reader.conn, self._idle_readers, self._open, self._lock
            )
            self._local.reader = reader
        return reader.conn

    def close(self) -> None:
        """Close every connection, those lent to live threads too."""
        with self._lock:
            self._closed = True
            for conn in self._open:
                conn.close()
            self._open.clear()
            self._idle_readers.clear()

    def _connect(self) -> sqlite3.Connection:
        self.check_open()
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged write survives power loss, not only a killed process.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        # See WAL_CHECKPOINT_BYTES: the store checkpoints after a write transaction, and
        # the log restarts at that size at most (so it is past it only once that much was
        # written since the last checkpoint).
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute(f"PRAGMA journal_size_limit={WAL_CHECKPOINT_BYTES}")
        with self._lock:
            if self._closed:  # closed meanwhile
                conn.close()
                self.check_open()
            self._open.add(conn)
        return conn


class _LentReader:
    """A reader connection lent to one thread, held in that thread's local storage."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


def _take_back(
    conn: sqlite3.Connection,
    idle: list[sqlite3.Connection],
    connections: set[sqlite3.Connection],
    lock: threading.Lock,
) -> None:
    with lock:
        if conn in connections:  # else the store was closed, and the connection with it
            idle.append(conn)
