"""A write transaction on a store's writer connection: points written and deleted with
their thumbnails and words, and the declarations of full-text and payload index fields.
The caller holds the collection's write lock."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from indexer.fulltext import FULL_TEXT_TABLE, FullTextSpec
from indexer.store.schema import CHUNK, chunks, has_full_text, json_list, set_meta

if TYPE_CHECKING:
    from indexer.store.sqlite_store import SqliteStore


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
            for chunk in chunks(labels):
                self.conn.execute(spec.insert_sql(), (json_list(chunk),))
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
            set_meta(self.conn, "full_text", spec.model_dump(mode="json"))
            if until is None:
                self.conn.execute("DELETE FROM meta WHERE key = 'full_text_backlog'")
            else:
                set_meta(self.conn, "full_text_backlog", {"after": 0, "until": until})
        self._declared.append(spec)

    def set_payload_indexes(self, fields: dict[str, str]) -> None:
        """Declare the payload fields to index (see :mod:`indexer.payload_index`)."""
        if fields:
            set_meta(self.conn, "payload_indexes", fields)
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
            self.conn.execute(spec.insert_sql(), (json_list(labels),))
        if len(labels) < batch:
            self.conn.execute("DELETE FROM meta WHERE key = 'full_text_backlog'")
            return False
        set_meta(self.conn, "full_text_backlog", {**backlog, "after": int(labels[-1])})
        return True


def _labels_of(conn: sqlite3.Connection, keys: Sequence[str]) -> np.ndarray:
    found: list[int] = []
    for start in range(0, len(keys), CHUNK):
        part = orjson.dumps(list(keys[start : start + CHUNK])).decode()
        found.extend(
            r[0]
            for r in conn.execute(
                "SELECT label FROM points WHERE pid IN (SELECT value FROM json_each(?))", (part,)
            )
        )
    return np.array(sorted(found), dtype=np.int64)


def _delete(conn: sqlite3.Connection, labels: np.ndarray) -> None:
    """Delete points, and their words where there is a full-text index."""
    with_words = has_full_text(conn)
    for chunk in chunks(labels):
        listed = (json_list(chunk),)
        conn.execute("DELETE FROM points WHERE label IN (SELECT value FROM json_each(?))", listed)
        conn.execute(
            "DELETE FROM thumbnails WHERE label IN (SELECT value FROM json_each(?))", listed
        )
        if with_words:
            conn.execute(
                f"DELETE FROM {FULL_TEXT_TABLE} WHERE rowid IN (SELECT value FROM json_each(?))",
                (json_list(chunk),),
            )
