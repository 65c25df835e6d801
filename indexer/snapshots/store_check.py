"""Checking a store restored from a snapshot, which may be hostile: schema, SQLite's
integrity check, the manifest's config, seq and count, and every point as an upsert checks
it, with schema-defined functions off."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import numpy as np
import orjson
from pydantic import ValidationError

from indexer.collection import CollectionConfig
from indexer.collection.validation import payload_json
from indexer.errors import InvalidId, InvalidInput, InvalidSnapshot
from indexer.fulltext import FULL_TEXT_TABLE, FullTextSpec
from indexer.points import as_vector_batch, decode_id, encode_id, validate_id
from indexer.snapshots.manifest import Manifest
from indexer.store import SqliteStore

_ROWS_AT_ONCE = 4096  # points checked together on restore
_UNTRUSTED_DB_PRAGMAS = ("trusted_schema=OFF", "cell_size_check=ON", "mmap_size=0")


def check_store(path: Path, manifest: Manifest, config: CollectionConfig) -> None:
    """Check an extracted store against the manifest and rename its collection to
    ``config.name``; raises :class:`InvalidSnapshot`."""
    try:
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:
            for pragma in _UNTRUSTED_DB_PRAGMAS:
                conn.execute(f"PRAGMA {pragma}")
            full_text = _full_text_spec(conn)
            if _schema(conn) != _reference_schema(path.parent, full_text):
                raise InvalidSnapshot("the store's tables are not those of a vecserve store")
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check(5)")]
            if problems != ["ok"]:
                raise InvalidSnapshot(f"the store is damaged: {'; '.join(problems)}")
            if full_text is not None:
                _check_full_text(conn)
            _check_contents(conn, manifest)
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'config'",
                (orjson.dumps(config.model_dump(mode="json")).decode(),),
            )
    except sqlite3.DatabaseError as exc:
        raise InvalidSnapshot(f"the store is not a usable SQLite database: {exc}") from None


def _check_contents(conn: sqlite3.Connection, manifest: Manifest) -> None:
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    try:
        stored = CollectionConfig.model_validate_json(meta.get("config", ""))
        seq = orjson.loads(meta.get("seq", ""))
    except (ValidationError, orjson.JSONDecodeError):
        raise InvalidSnapshot("the store's metadata is unreadable") from None
    if stored != manifest.config:
        raise InvalidSnapshot("the store's configuration does not match the manifest")
    if seq != manifest.seq:
        raise InvalidSnapshot(f"the store is at seq {seq}; the manifest says {manifest.seq}")
    count, bad_vectors, bad_payloads, bad_labels, top = conn.execute(
        "SELECT count(*),"
        " total(typeof(vector) != 'blob' OR length(vector) != ?),"
        " total(CASE WHEN typeof(payload) != 'text' THEN 1 WHEN NOT json_valid(payload) THEN 1"
        "  WHEN json_type(payload) != 'object' THEN 1 ELSE 0 END),"
        " total(label < 1), max(label) FROM points",
        (4 * stored.dim,),
    ).fetchone()
    if count != manifest.points:
        raise InvalidSnapshot(f"the store has {count} points; the manifest says {manifest.points}")
    if bad_vectors:
        raise InvalidSnapshot(f"{int(bad_vectors)} vectors are not {stored.dim} float32 values")
    if bad_payloads:
        raise InvalidSnapshot(f"{int(bad_payloads)} payloads are not JSON objects")
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'points'").fetchone()
    # New labels continue from sqlite_sequence; one at or below a stored label would clash.
    if bad_labels or (top is not None and (row is None or row[0] < top)):
        raise InvalidSnapshot("the store's point labels are inconsistent")
    for (key,) in conn.execute("SELECT pid FROM points"):
        try:
            valid = isinstance(key, str) and encode_id(validate_id(decode_id(key))) == key
        except (ValueError, InvalidId):
            valid = False
        if not valid:
            raise InvalidSnapshot(f"the store holds an invalid point id {str(key)[:80]!r}")
    _check_points(conn, stored.dim)


def _check_points(conn: sqlite3.Connection, dim: int) -> None:
    """Every point as an upsert checks it (the same checks), its payload read back as the
    server reads it: a point it could not read would fail every get, scroll and search
    that meets it, and one with NaN in its vector would never be found."""
    rows = conn.execute("SELECT pid, CAST(payload AS BLOB), vector FROM points ORDER BY label")
    while batch := rows.fetchmany(_ROWS_AT_ONCE):
        vectors = np.frombuffer(b"".join(r[2] for r in batch), dtype=np.float32)
        try:
            as_vector_batch(vectors.reshape(len(batch), dim), dim)
        except InvalidInput:
            for key, _, blob in batch:  # which point
                try:
                    as_vector_batch(np.frombuffer(blob, dtype=np.float32), dim)
                except InvalidInput as exc:
                    raise InvalidSnapshot(f"point {_shown(key)}: {exc.message}") from None
        for key, payload, _ in batch:
            try:
                payload_json(orjson.loads(payload), f"of point {_shown(key)}")
            except orjson.JSONDecodeError as exc:
                raise InvalidSnapshot(
                    f"the payload of point {_shown(key)} is not JSON this server can read: {exc}"
                ) from None
            except InvalidInput as exc:
                raise InvalidSnapshot(exc.message) from None


def _shown(key: str) -> str:
    return repr(decode_id(key))[:80]


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str, str, str | None]]:
    return conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
    ).fetchall()


def _full_text_spec(conn: sqlite3.Connection) -> FullTextSpec | None:
    """The store's full-text declaration, if it has one (and a meta table to hold it)."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    row = has_meta and conn.execute("SELECT value FROM meta WHERE key = 'full_text'").fetchone()
    if not row:
        return None
    try:
        return FullTextSpec.model_validate_json(row[0])
    except ValidationError:
        raise InvalidSnapshot("the store's full-text declaration is unreadable") from None


def _check_full_text(conn: sqlite3.Connection) -> None:
    """FTS5's own check that its index matches its content, and one row per point."""
    try:
        conn.execute(f"INSERT INTO {FULL_TEXT_TABLE}({FULL_TEXT_TABLE}) VALUES ('integrity-check')")
    except sqlite3.DatabaseError as exc:
        raise InvalidSnapshot(f"the store's full-text index is damaged: {exc}") from None
    orphans = conn.execute(
        f"SELECT count(*) FROM {FULL_TEXT_TABLE} WHERE rowid NOT IN (SELECT label FROM points)"
    ).fetchone()[0]
    if orphans:
        raise InvalidSnapshot(f"the store's full-text index holds {orphans} deleted points")


def _reference_schema(
    folder: Path, full_text: FullTextSpec | None = None
) -> list[tuple[str, str, str, str | None]]:
    """The schema of a fresh store with the same full-text declaration, made in ``folder``
    (a scratch folder) and removed."""
    path = folder / f".reference-{uuid.uuid4().hex}.sqlite3"
    try:
        store = SqliteStore(path)
        if full_text is not None:
            with store.transaction() as txn:
                txn.set_full_text(full_text)
        store.close()
        with closing(sqlite3.connect(path)) as conn:
            return _schema(conn)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
