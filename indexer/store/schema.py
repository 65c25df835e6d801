"""The store's tables, and how lists of labels travel to SQL: as JSON arrays read by
``json_each``, a chunk at a time so that statements and memory stay bounded."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from indexer.fulltext import FULL_TEXT_TABLE

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    label   INTEGER PRIMARY KEY AUTOINCREMENT,
    pid     TEXT NOT NULL UNIQUE,
    vector  BLOB NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS thumbnails (label INTEGER PRIMARY KEY, image BLOB NOT NULL);
"""
CHUNK = 16_384  # rows per query when reading many labels (keeps SQL and memory bounded)


def chunks(labels: np.ndarray) -> Iterator[np.ndarray]:
    """``labels`` a CHUNK at a time."""
    for start in range(0, len(labels), CHUNK):
        yield labels[start : start + CHUNK]


def json_list(labels: np.ndarray) -> str:
    """``labels`` as a JSON array, for ``json_each(?)``."""
    return orjson.dumps(labels.tolist()).decode()


def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    """Set ``meta.key`` to ``value`` (JSON) on ``conn``."""
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, orjson.dumps(value).decode()))


def has_full_text(conn: sqlite3.Connection) -> bool:
    """Whether the database has a full-text table (as ``conn`` sees it)."""
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (FULL_TEXT_TABLE,)
        ).fetchone()
        is not None
    )
