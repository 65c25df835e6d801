"""The store's write-ahead log is copied into the database after a transaction, not in
its COMMIT, which the collection runs under the lock that searches wait for."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.store import SqliteStore
from indexer.store.connections import WAL_CHECKPOINT_BYTES


def write(store: SqliteStore, start: int, n: int, dim: int = 256) -> int:
    """Write ``n`` points; returns the database file's size just after the COMMIT."""
    vectors = np.ones((n, dim), dtype=np.float32)
    with store.transaction() as txn:
        keys = [f'"p{i}"' for i in range(start, start + n)]
        txn.upsert(keys, vectors, ["{}"] * n)
        txn.commit()
        return store.path.stat().st_size


def test_a_large_write_is_checkpointed_after_its_commit_not_in_it(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "points.db")
    try:
        before = store.path.stat().st_size
        rows = 2 * WAL_CHECKPOINT_BYTES // 1024  # 1 KiB vectors: twice the threshold
        at_commit = write(store, 0, rows)
        assert at_commit == before  # the COMMIT left the log alone
        after = store.path.stat().st_size
        assert after > before + WAL_CHECKPOINT_BYTES  # the transaction's end copied it
        assert store.seq == 1
    finally:
        store.close()


def test_small_writes_after_a_checkpoint_leave_the_log_until_it_is_large_again(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "points.db")
    try:
        write(store, 0, 2 * WAL_CHECKPOINT_BYTES // 1024)  # checkpointed when it ends
        checkpointed = store.path.stat().st_size
        for i in range(5):  # the log file is still large: it is its content that counts
            write(store, 100_000 + i, 1)
        assert store.path.stat().st_size == checkpointed  # each write cost one fsync
    finally:
        store.close()
