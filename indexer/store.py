"""The store of record: one SQLite database (WAL mode) per collection.

Each point is a row with an internal integer *label* (what FAISS indexes hold), the user's
id, the vector as written (float32 blob) and a JSON payload. Labels come from an
AUTOINCREMENT sequence and are never reused: an update writes a new row under a new
label and deletes the old one. So a label present both in an index and in the store
always means the same vector, and an index is brought up to date by comparing label sets.

``meta.seq`` counts committed write transactions; a saved index records the seq it covers.

A point may have a small thumbnail (a JPEG, in ``thumbnails`` under its label), written
with it and deleted with it, so it goes where the point goes: backups, snapshots.
Payload fields declared for indexing are listed in ``meta.payload_indexes``; their
indexes are in memory, derived from the payloads (:mod:`indexer.payload_index`).
With full-text fields declared (``meta.full_text``, see :mod:`indexer.fulltext`), an FTS5
table ``ft`` holds each point's words under its label, written in the same transaction as
the point. Points that were there before the declaration are indexed afterwards in
batches (``meta.full_text_backlog``: the labels ``after < label <= until`` still to do).

One writer at a time (the collection's write lock); any number of readers, each thread on
its own connection. A write is acknowledged only after its transaction commits.

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from indexer.errors import CollectionNotFound, InvalidQuery
from indexer.fulltext import FULL_TEXT_TABLE, FullTextSpec

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    label   INTEGER PRIMARY KEY AUTOINCREMENT,
    pid     TEXT NOT NULL UNIQUE,
    vector  BLOB NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS thumbnails (label INTEGER PRIMARY KEY, image BLOB NOT NULL);
"""
_CHUNK = 16_384  # rows per query when reading many labels (keeps SQL and memory bounded)


class SqliteStore:
    """Points, payloads and the write sequence of one collection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: set[sqlite3.Connection] = set()
        self._idle_readers: list[sqlite3.Connection] = []  # lent to no live thread
        self._connections_lock = threading.Lock()
        self._closed = False
        self._writer = self._connect()
        self._writer.executescript(_SCHEMA)
        self._writer.execute("INSERT OR IGNORE INTO meta VALUES ('seq', '0')")
        spec = self.get_meta("full_text")
        self.full_text: FullTextSpec | None = (
            None if spec is None else FullTextSpec.model_validate(spec)
        )

    def _connect(self) -> sqlite3.Connection:
        self._check_open()
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged write survives power loss, not only a killed process.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        with self._connections_lock:
            if self._closed:  # closed meanwhile
                conn.close()
                self._check_open()
            self._connections.add(conn)
        return conn

    def _check_open(self) -> None:
        """A closed store stays closed: a thread without a connection yet must not open
        one to the path, where another collection of the same name may live by now."""
        if self._closed:
            raise CollectionNotFound("the collection was dropped (or its engine closed)")

    @property
    def _reader(self) -> sqlite3.Connection:
        reader: _LentReader | None = getattr(self._local, "reader", None)
        if reader is None:
            self._check_open()
            with self._connections_lock:
                idle = self._idle_readers.pop() if self._idle_readers else None
            reader = _LentReader(idle or self._connect())
            # A thread's locals are dropped when it ends: the connection comes back then.
            weakref.finalize(
                reader,
                _take_back,
                reader.conn,
                self._idle_readers,
                self._connections,
                self._connections_lock,
            )
            self._local.reader = reader
        return reader.conn

    def close(self) -> None:
        with self._connections_lock:
            self._closed = True
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            self._idle_readers.clear()

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
        the caller already committed (``txn.commit()``, to commit under its own lock)."""
        conn = self._writer
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
        out = np.empty((len(labels), dim), dtype=np.float32)
        position = {int(label): i for i, label in enumerate(labels)}
        for chunk in _chunks(labels):
            for label, blob in self._reader.execute(
                "SELECT label, vector FROM points WHERE label IN (SELECT value FROM json_each(?))",
                (_json_list(chunk),),
            ):
                out[position[label]] = np.frombuffer(blob, dtype=np.float32)
        return out

    def iter_vectors(
        self, dim: int, labels: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(labels, vectors) in chunks: of ``labels`` if given, else of every point."""
        if labels is not None:
            for chunk in _chunks(labels):
                yield chunk, self.vectors(chunk, dim)
            return
        after = -1
        while True:
            rows = self._reader.execute(
                "SELECT label, vector FROM points WHERE label > ? ORDER BY label LIMIT ?",
                (after, _CHUNK),
            ).fetchall()
            if not rows:
                return
            chunk = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, dim)
            yield chunk, vecs
            after = int(chunk[-1])

    def rows(
        self, labels: np.ndarray, *, with_vectors: bool
    ) -> dict[int, tuple[str, bytes | None]]:
        """label -> (payload JSON, vector blob or None) for the labels that exist."""
        column = "vector" if with_vectors else "NULL"
        out: dict[int, tuple[str, bytes | None]] = {}
        for chunk in _chunks(labels):
            for label, payload, blob in self._reader.execute(
                f"SELECT label, payload, {column} FROM points"
                " WHERE label IN (SELECT value FROM json_each(?))",
                (_json_list(chunk),),
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


class Transaction:
    """One write transaction on the store's writer connection."""

    def __init__(self, conn: sqlite3.Connection, store: SqliteStore) -> None:
        self.conn = conn
        self.store = store
        self.committed = False
        self._declared: list[FullTextSpec | None] = []  # set_full_text's, applied on commit

    def commit(self) -> None:
        self.conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'seq'")
        self.conn.execute("COMMIT")
        self.committed = True
        if self._declared:  # the store's spec changes only once its declaration commits
            self.store.full_text = self._declared[-1]

    def upsert(
        self,
        keys: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[str],
        thumbnails: Sequence[bytes] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Write rows (and a thumbnail for each, when given); return (their new labels, the
        labels of the rows they replaced)."""
        replaced = _labels_of(self.conn, keys)
        _delete(self.conn, replaced)
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'points'").fetchone()
        first = (row[0] if row else 0) + 1
        labels = np.arange(first, first + len(keys), dtype=np.int64)
        self.conn.executemany(
            "INSERT INTO points (label, pid, vector, payload) VALUES (?, ?, ?, ?)",
            zip(labels.tolist(), keys, (v.tobytes() for v in vectors), payloads, strict=True),
        )
        if thumbnails is not None:
            self.conn.executemany(
                "INSERT INTO thumbnails (label, image) VALUES (?, ?)",
                zip(labels.tolist(), thumbnails, strict=True),
            )
        spec = self.store.full_text
        if spec is not None:
            for chunk in _chunks(labels):
                self.conn.execute(spec.insert_sql(), (_json_list(chunk),))
        return labels, replaced

    def delete_keys(self, keys: Sequence[str]) -> np.ndarray:
        """Delete the rows of these id keys; return their labels."""
        labels = _labels_of(self.conn, keys)
        _delete(self.conn, labels)
        return labels

    def delete_labels(self, labels: np.ndarray) -> None:
        """Delete the rows of these labels (of points there are)."""
        _delete(self.conn, labels)

    def delete_where(self, where: str, params: Sequence[Any]) -> np.ndarray:
        """Delete the rows matching a compiled filter; return their labels."""
        cursor = self.conn.execute(f"SELECT label FROM points WHERE {where}", tuple(params))
        labels = np.fromiter((r[0] for r in cursor), dtype=np.int64)
        _delete(self.conn, labels)
        return labels

    def set_full_text(self, spec: FullTextSpec | None) -> None:
        """Declare (or, with None, drop) the collection's full-text fields. The index starts
        empty; the points already there are its backlog (see :meth:`index_full_text`)."""
        self.conn.execute(f"DROP TABLE IF EXISTS {FULL_TEXT_TABLE}")
        if spec is None:
            self.conn.execute("DELETE FROM meta WHERE key IN ('full_text', 'full_text_backlog')")
        else:
            self.conn.execute(spec.create_sql())
            until = self.conn.execute("SELECT max(label) FROM points").fetchone()[0]
            _set_meta(self.conn, "full_text", spec.model_dump(mode="json"))
            if until is None:
                self.conn.execute("DELETE FROM meta WHERE key = 'full_text_backlog'")
            else:
                _set_meta(self.conn, "full_text_backlog", {"after": 0, "until": until})
        self._declared.append(spec)

    def set_payload_indexes(self, fields: dict[str, str]) -> None:
        """Declare the payload fields to index (see :mod:`indexer.payload_index`)."""
        if fields:
            _set_meta(self.conn, "payload_indexes", fields)
        else:
            self.conn.execute("DELETE FROM meta WHERE key = 'payload_indexes'")

    def index_full_text(self, batch: int) -> bool:
        """Index up to ``batch`` points of the backlog; whether a backlog remains."""
        spec = self.store.full_text
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'full_text_backlog'").fetchone()
        if spec is None or row is None:
            return False
        backlog = orjson.loads(row[0])
        labels = np.fromiter(
            (
                r[0]
                for r in self.conn.execute(
                    "SELECT label FROM points WHERE label > ? AND label <= ?"
                    " ORDER BY label LIMIT ?",
                    (backlog["after"], backlog["until"], batch),
                )
            ),
            dtype=np.int64,
        )
        if len(labels):
            self.conn.execute(spec.insert_sql(), (_json_list(labels),))
        if len(labels) < batch:
            self.conn.execute("DELETE FROM meta WHERE key = 'full_text_backlog'")
            return False
        _set_meta(self.conn, "full_text_backlog", {**backlog, "after": int(labels[-1])})
        return True


def _labels_of(conn: sqlite3.Connection, keys: Sequence[str]) -> np.ndarray:
    found: list[int] = []
    for start in range(0, len(keys), _CHUNK):
        part = orjson.dumps(list(keys[start : start + _CHUNK])).decode()
        found.extend(
            r[0]
            for r in conn.execute(
                "SELECT label FROM points WHERE pid IN (SELECT value FROM json_each(?))", (part,)
            )
        )
    return np.array(sorted(found), dtype=np.int64)


def _delete(conn: sqlite3.Connection, labels: np.ndarray) -> None:
    """Delete points, and their words where there is a full-text index."""
    has_full_text = _has_full_text(conn)
    for chunk in _chunks(labels):
        listed = (_json_list(chunk),)
        conn.execute("DELETE FROM points WHERE label IN (SELECT value FROM json_each(?))", listed)
        conn.execute(
            "DELETE FROM thumbnails WHERE label IN (SELECT value FROM json_each(?))", listed
        )
        if has_full_text:
            conn.execute(
                f"DELETE FROM {FULL_TEXT_TABLE} WHERE rowid IN (SELECT value FROM json_each(?))",
                (_json_list(chunk),),
            )


def _has_full_text(conn: sqlite3.Connection) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (FULL_TEXT_TABLE,)
        ).fetchone()
        is not None
    )


def _set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, orjson.dumps(value).decode()))


def _chunks(labels: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(labels), _CHUNK):
        yield labels[start : start + _CHUNK]


def _json_list(labels: np.ndarray) -> str:
    return orjson.dumps(labels.tolist()).decode()
