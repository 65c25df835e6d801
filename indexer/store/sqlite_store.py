"""A collection's store of record (see :mod:`indexer.store`): opening it, its metadata,
and every read, each on the calling thread's own reader connection."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from indexer.errors import InvalidQuery
from indexer.fulltext import FULL_TEXT_TABLE, FullTextSpec
from indexer.store.connections import WAL_CHECKPOINT_BYTES, Connections
from indexer.store.schema import SCHEMA, chunks, json_list
from indexer.store.transaction import Transaction

log = logging.getLogger(__name__)

# Rows a query of a scan of every vector reads: each row's vector is a Python object of its
# own until the chunk is joined, and the allocator keeps the memory freed by many small
# objects (16,384 rows of 384-d, 25 MB of them, made a 40,000-point bulk load's peak
# resident memory 470 MiB rather than 330).
SCAN_ROWS = 2048


class SqliteStore:
    """Points, payloads and the write sequence of one collection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connections = Connections(path)
        self._writer = self._connections.writer
        self._writer.executescript(SCHEMA)
        self._writer.execute("INSERT OR IGNORE INTO meta VALUES ('seq', '0')")
        spec = self.get_meta("full_text")
        self.full_text: FullTextSpec | None = (
            None if spec is None else FullTextSpec.model_validate(spec)
        )

    @property
    def _reader(self) -> sqlite3.Connection:
        return self._connections.reader

    def _check_open(self) -> None:
        self._connections.check_open()

    def close(self) -> None:
        self._connections.close()

    # -- metadata --------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        row = self._reader.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else orjson.loads(row[0])

    def set_meta_once(self, key: str, value: Any) -> Any:
        """Set ``key`` unless it is set (by another process, say); its value either way."""
        self._writer.execute(
            "INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, orjson.dumps(value).decode())
        )
        return self.get_meta(key)

    def set_meta(self, key: str, value: Any) -> None:
        self._writer.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, orjson.dumps(value).decode())
        )

    @property
    def seq(self) -> int:
        return int(self.get_meta("seq"))

    # -- writes (the caller holds the collection's write lock) ------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """BEGIN IMMEDIATE ... COMMIT. Work done before an exception is rolled back, unless
        the caller already committed (``txn.commit()``, to commit under its own lock).

        The COMMIT writes the log without waiting for the disk (synchronous=NORMAL for the
        transaction); the log is fsynced when the block ends, before the caller can
        acknowledge the write. A caller that commits under a lock of its own (the one
        searches wait for) thus holds it for the writing, not for the fsync: 150-250 ms
        for a 10,000-point batch (20 MiB) on a busy disk. A search may meanwhile see the
        write, which power lost in those milliseconds would take away unacknowledged."""
        conn = self._writer
        conn.execute("PRAGMA synchronous=NORMAL")
        txn: Transaction | None = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            txn = Transaction(conn, self)
            try:
                yield txn
            except BaseException:
                if not txn.committed:
                    conn.execute("ROLLBACK")
                raise
            if not txn.committed:
                txn.commit()
        finally:
            conn.execute("PRAGMA synchronous=FULL")
            if txn is not None and txn.committed:
                self._sync_log()
        self._checkpoint_if_large()

    def _sync_log(self) -> None:
        """fsync the write-ahead log, which holds every committed write not yet copied
        into the database (SQLite fsyncs the log before such a copy, and the database
        after it)."""
        fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _checkpoint_if_large(self) -> None:
        """Copy the write-ahead log into the database once it is past WAL_CHECKPOINT_BYTES
        (PASSIVE: readers and their snapshots are not waited for; what they still read
        is left for the next time). The write it follows is committed whatever happens
        here: a failure is only logged, and the next write tries again."""
        try:
            if os.path.getsize(f"{self.path}-wal") <= WAL_CHECKPOINT_BYTES:
                return
            self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except (OSError, sqlite3.Error) as exc:
            log.warning(
                "store %s: checkpoint failed (%s); retried after the next write", self.path, exc
            )

    # -- reads -------------------------------------------------------------------------

    def all_keys(self) -> list[tuple[int, str]]:
        """Every (label, id key), in label order. Read from the index on ids, which holds
        both, and sorted here: an ordered read would walk the table, vectors and all."""
        rows: list[tuple[int, str]] = self._reader.execute(
            "SELECT label, pid FROM points"
        ).fetchall()
        rows.sort()
        return rows

    def vectors(self, labels: np.ndarray, dim: int) -> np.ndarray:
        """The vectors of ``labels`` in the same order; every label must exist."""
        parts = [self._stored_vectors(chunk, dim)[1] for chunk in chunks(labels)]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty((0, dim), dtype=np.float32)

    def iter_vectors(
        self, dim: int, labels: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(labels, vectors) in chunks: of every point, or of those of ``labels`` that are
        stored now, in their order. A label deleted since its caller listed it (a rebuild
        catching up reads outside the collection's locks) is left out, never given with a
        vector that is no point's: an HNSW graph holding one can lose live points."""
        if labels is not None:
            for chunk in chunks(labels):
                yield self._stored_vectors(chunk, dim)
            return
        after = -1
        while True:
            rows = self._reader.execute(
                "SELECT label, vector FROM points WHERE label > ? ORDER BY label LIMIT ?",
                (after, SCAN_ROWS),
            ).fetchall()
            if not rows:
                return
            chunk = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, dim)
            yield chunk, vecs
            after = int(chunk[-1])

    def _stored_vectors(self, labels: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """The labels of ``labels`` that are stored, in their order, and their vectors."""
        out = np.empty((len(labels), dim), dtype=np.float32)
        found = np.zeros(len(labels), dtype=bool)
        position = {int(label): i for i, label in enumerate(labels)}
        for label, blob in self._reader.execute(
            "SELECT label, vector FROM points WHERE label IN (SELECT value FROM json_each(?))",
            (json_list(labels),),
        ):
            out[position[label]] = np.frombuffer(blob, dtype=np.float32)
            found[position[label]] = True
        if found.all():
            return labels, out
        return labels[found], out[found]

    def rows(
        self, labels: np.ndarray, *, with_vectors: bool
    ) -> dict[int, tuple[str, bytes | None]]:
        """label -> (payload JSON, vector blob or None) for the labels that exist."""
        column = "vector" if with_vectors else "NULL"
        out: dict[int, tuple[str, bytes | None]] = {}
        for chunk in chunks(labels):
            for label, payload, blob in self._reader.execute(
                f"SELECT label, payload, {column} FROM points"
                " WHERE label IN (SELECT value FROM json_each(?))",
                (json_list(chunk),),
            ):
                out[label] = (payload, blob)
        return out

    def select_labels(self, where: str, params: Sequence[Any]) -> np.ndarray:
        """Labels of the points matching a compiled filter, sorted."""
        cursor = self._reader.execute(
            f"SELECT label FROM points WHERE {where} ORDER BY label", tuple(params)
        )
        return np.fromiter((r[0] for r in cursor), dtype=np.int64)

    def payloads_between(self, after: int, until: int, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` (label, payload JSON) with ``after < label <= until``, in label
        order."""
        rows: list[tuple[int, str]] = self._reader.execute(
            "SELECT label, payload FROM points WHERE label > ? AND label <= ?"
            " ORDER BY label LIMIT ?",
            (after, until, limit),
        ).fetchall()
        return rows

    def rows_after(self, after_label: int, limit: int) -> list[tuple[int, str, bytes, str]]:
        """Up to ``limit`` rows (label, id key, vector blob, payload JSON) with labels after
        ``after_label``, in label order. Every insert and update takes a new label, so these
        are the writes a follower that has seen ``after_label`` has not."""
        rows: list[tuple[int, str, bytes, str]] = self._reader.execute(
            "SELECT label, pid, vector, payload FROM points WHERE label > ? ORDER BY label LIMIT ?",
            (after_label, limit),
        ).fetchall()
        return rows

    def page(
        self,
        after_key: str | None,
        limit: int,
        where: str | None,
        params: Sequence[Any],
        *,
        with_vectors: bool,
    ) -> list[tuple[int, str, str, bytes | None]]:
        """A page of (label, id key, payload, vector) in id-key order, after ``after_key``."""
        clauses, args = [], []
        if after_key is not None:
            clauses.append("pid > ?")
            args.append(after_key)
        if where is not None:
            clauses.append(where)
            args.extend(params)
        sql = f"SELECT label, pid, payload, {'vector' if with_vectors else 'NULL'} FROM points"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY pid LIMIT ?"
        return self._reader.execute(sql, (*args, limit)).fetchall()

    def keys_after(self, after_key: str | None, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` (label, id key) in id-key order after ``after_key``: read from
        the key index alone, no row."""
        rows: list[tuple[int, str]] = self._reader.execute(
            "SELECT label, pid FROM points WHERE pid > ? ORDER BY pid LIMIT ?",
            ("" if after_key is None else after_key, limit),
        ).fetchall()
        return rows

    def thumbnail(self, key: str) -> bytes | None:
        """The thumbnail of the point with this id key, or None when it has none."""
        row = self._reader.execute(
            "SELECT t.image FROM thumbnails t JOIN points p ON p.label = t.label WHERE p.pid = ?",
            (key,),
        ).fetchone()
        return bytes(row[0]) if row else None

    # -- full text -----------------------------------------------------------------------

    def has_full_text_backlog(self) -> bool:
        """Whether points written before the full-text declaration remain to be indexed."""
        return self.get_meta("full_text_backlog") is not None

    def full_text_backlog(self) -> tuple[int, int]:
        """(points not yet in the full-text index, points in the collection)."""
        backlog = self.get_meta("full_text_backlog")
        total = int(self._reader.execute("SELECT count(*) FROM points").fetchone()[0])
        if backlog is None:
            return 0, total
        pending = self._reader.execute(
            "SELECT count(*) FROM points WHERE label > ? AND label <= ?",
            (backlog["after"], backlog["until"]),
        ).fetchone()[0]
        return int(pending), total

    def lexical(
        self,
        spec: FullTextSpec,
        match: str,
        limit: int,
        where: str | None = None,
        params: Sequence[Any] = (),
    ) -> tuple[np.ndarray, np.ndarray]:
        """(labels, BM25 scores) of the best ``limit`` points matching the FTS5 expression
        ``match`` (and the compiled filter ``where``), best first. Scores are FTS5's bm25()
        negated, so that higher is better."""
        # FTS5 sorts by its rank column itself, computing bm25() once per match.
        t = FULL_TEXT_TABLE
        sql = f"SELECT {t}.rowid, -{t}.rank FROM {t}"
        if where is not None:
            sql += f" JOIN points ON points.label = {t}.rowid"
        sql += f" WHERE {t} MATCH ? AND {t}.rank MATCH ?"
        if where is not None:
            sql += f" AND ({where})"
        sql += f" ORDER BY {t}.rank LIMIT ?"
        try:
            rows = self._reader.execute(sql, (match, spec.rank_sql(), *params, limit)).fetchall()
        except sqlite3.OperationalError as exc:
            # Only an expression the user wrote in FTS5 syntax can fail to parse.
            raise InvalidQuery(f"the full-text query is not valid FTS5: {exc}") from None
        labels = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        scores = np.fromiter((r[1] for r in rows), dtype=np.float64, count=len(rows))
        return labels, scores

    def backup_to(self, target: Path) -> None:
        """A consistent copy of the database, taken while writes go on (SQLite online backup)."""
        dest = sqlite3.connect(target)
        try:
            self._reader.backup(dest)
        except sqlite3.Error:
            self._check_open()  # closed during the backup: the collection is gone
            raise
        finally:
            dest.close()
