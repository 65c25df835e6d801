"""Collection snapshots: a collection at one point in time, in one tar file.

A snapshot is an uncompressed tar (GNU format) with these members, in this order::

    manifest.json   {"format": 1, "collection", "created_at", "seq", "points", "config",
                     "members": [{"name", "size", "sha256"}, ...]}  (every other member)
    config.json     the collection's configuration
    store.sqlite3   a copy of the store made by SQLite's online backup in one read
                    transaction: every write committed up to ``seq``, none after
    index.vsi       the saved FAISS index, when there is one; a cache that may cover an
                    older seq (it is caught up from the store when used)

Beside ``NAME.tar`` lies ``NAME.tar.sha256``, the SHA-256 of the whole file in
``sha256sum`` format. Snapshots live in ``DATA/snapshots/COLLECTION/``, outside the
collections folder, and outlive the collection they were taken from.

Restoring treats the file as hostile. Its SHA-256 must match the one given; the raw tar
headers are walked before :mod:`tarfile` parses them, so that only regular files of sizes
the file can hold get through (no links, devices, FIFOs, directories, or pax and GNU
long-name headers, which :mod:`tarfile` would read whole into memory); every member must
be one of the names above, listed in the manifest with its size and SHA-256. Members are
never extracted by name: their bytes are copied to paths the caller chose. The database is
then checked (schema, ``PRAGMA integrity_check``, the manifest's config, seq and count,
vector lengths, ids and payloads) with schema-defined functions off. Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import secrets
import shutil
import sqlite3
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Final, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from indexer.collection import INDEX_FILE, Collection, CollectionConfig
from indexer.collection.validation import payload_json
from indexer.errors import (
    ChecksumMismatch,
    InvalidId,
    InvalidInput,
    InvalidName,
    InvalidSnapshot,
    SnapshotNotFound,
)
from indexer.fulltext import FULL_TEXT_TABLE, FullTextSpec
from indexer.points import as_vector_batch, decode_id, encode_id, validate_id
from indexer.store import SqliteStore

log = logging.getLogger(__name__)

FORMAT: Final = 1
MANIFEST: Final = "manifest.json"
CONFIG: Final = "config.json"
STORE: Final = "store.sqlite3"
INDEX: Final = "index.vsi"
MemberName = Literal["config.json", "store.sqlite3", "index.vsi"]
MAX_MEMBERS = 8
MAX_JSON_BYTES = 1024 * 1024  # manifest.json and config.json are read into memory
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}-\d{8}T\d{6}Z-[0-9a-f]{8}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024
_ROWS_AT_ONCE = 4096  # points checked together on restore
_BLOCK = 512
_REGULAR = (b"0", b"\0")
_KINDS = {
    b"1": "hard link",
    b"2": "symbolic link",
    b"3": "character device",
    b"4": "block device",
    b"5": "directory",
    b"6": "FIFO",
    b"x": "pax header",
    b"g": "pax global header",
    b"L": "GNU long name",
    b"K": "GNU long link name",
    b"S": "sparse file",
}


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A stored snapshot: its tar file, and the store sequence number and point count it
    holds (every write committed up to ``seq``, none after)."""

    name: str
    collection: str
    path: Path
    size: int
    sha256: str
    created_at: datetime
    seq: int
    points: int


class MemberEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: MemberName
    size: int = Field(ge=0)
    sha256: str = Field(pattern=_SHA256.pattern)


class Manifest(BaseModel):
    """``manifest.json``: what the snapshot holds, and the size and SHA-256 of each member."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1]
    collection: str = Field(max_length=64)
    created_at: datetime
    seq: int = Field(ge=0)
    points: int = Field(ge=0)
    config: CollectionConfig
    members: list[MemberEntry]

    @model_validator(mode="after")
    def _required_members(self) -> Manifest:
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError("a member is listed twice")
        if not {CONFIG, STORE} <= set(names):
            raise ValueError(f"{CONFIG} and {STORE} must be listed")
        return self

    def member(self, name: str) -> MemberEntry | None:
        return next((m for m in self.members if m.name == name), None)


def checked_sha256(value: str) -> str:
    """``value`` as 64 lowercase hex digits; raises :class:`InvalidInput` otherwise."""
    digest = value.strip().lower()
    if not _SHA256.match(digest):
        raise InvalidInput("a SHA-256 is 64 hexadecimal digits")
    return digest


def validate_snapshot_name(name: object) -> str:
    if not isinstance(name, str) or not SNAPSHOT_NAME.match(name):
        raise InvalidName(f"invalid snapshot name {name!r}")
    return name


class SnapshotArea:
    """The snapshots of a data folder: ``ROOT/COLLECTION/NAME.tar`` and ``NAME.tar.sha256``.

    Work in progress (a snapshot being written, an upload being received) lives in
    dot-names here, which are removed when the area is opened again after a crash.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for leftover in [*root.glob(".*"), *root.glob("*/.*")]:
            _remove(leftover)

    def take(self, collection: Collection) -> SnapshotInfo:
        """Write a snapshot of ``collection``; writes go on meanwhile."""
        created = datetime.now(UTC)
        name = f"{collection.name}-{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
        folder = self.root / collection.name
        folder.mkdir(exist_ok=True)
        work = folder / f".{name}"
        work.mkdir()
        try:
            files: dict[MemberName, Path] = {CONFIG: work / CONFIG, STORE: work / STORE}
            files[CONFIG].write_bytes(_config_json(collection.config))
            # Before the store, so it covers no later seq; saved indexes are replaced by
            # rename, so this copies one whole version. None saved: a restore builds it.
            with suppress(FileNotFoundError):
                shutil.copyfile(collection.folder / INDEX_FILE, work / INDEX)
            collection.store.backup_to(files[STORE])
            seq, points = _seal_store_copy(files[STORE])
            if (work / INDEX).exists():
                files[INDEX] = work / INDEX
            manifest = Manifest(
                format=FORMAT,
                collection=collection.name,
                created_at=created,
                seq=seq,
                points=points,
                config=collection.config,
                members=[
                    MemberEntry(name=member, size=path.stat().st_size, sha256=_sha256_file(path))
                    for member, path in files.items()
                ],
            )
            partial = work / "snapshot.tar"
            _write_tar(partial, manifest, files)
            digest = _sha256_file(partial)
            tar_path = folder / f"{name}.tar"
            checksum = work / "snapshot.tar.sha256"
            checksum.write_text(f"{digest}  {tar_path.name}\n")
            os.replace(checksum, folder / f"{tar_path.name}.sha256")
            os.replace(partial, tar_path)
            _fsync_dir(folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info(
            "collection %s: snapshot %s at seq %d (%d points)", collection.name, name, seq, points
        )
        return SnapshotInfo(
            name=name,
            collection=collection.name,
            path=tar_path,
            size=tar_path.stat().st_size,
            sha256=digest,
            created_at=created,
            seq=seq,
            points=points,
        )

    def snapshots_of(self, collection: str) -> list[SnapshotInfo]:
        """The snapshots of ``collection``, oldest first; unreadable files are skipped, and
        so are snapshots deleted while they are listed."""
        folder = self.root / collection
        if not folder.is_dir():
            return []
        infos = []
        for path in folder.glob("*.tar"):
            if SNAPSHOT_NAME.match(path.stem):
                try:
                    infos.append(self.get(collection, path.stem))
                except SnapshotNotFound:
                    pass  # deleted since the folder was read
                except InvalidSnapshot as exc:
                    log.warning("snapshot %s is unreadable and left out: %s", path, exc)
        return sorted(infos, key=lambda info: (info.created_at, info.name))

    def get(self, collection: str, snapshot: str) -> SnapshotInfo:
        """One snapshot; raises :class:`SnapshotNotFound`."""
        info, file = self.open(collection, snapshot)
        file.close()
        return info

    def open(self, collection: str, snapshot: str) -> tuple[SnapshotInfo, IO[bytes]]:
        """One snapshot and its tar file, open for reading; the caller closes the file.
        Raises :class:`SnapshotNotFound`.

        The file is opened first and everything else is read from it, so a snapshot
        deleted meanwhile (by another request) is either found whole or not found: the
        open file stays readable to its end after the delete.
        """
        path = self.root / collection / f"{validate_snapshot_name(snapshot)}.tar"
        not_found = SnapshotNotFound(f"collection {collection!r} has no snapshot {snapshot!r}")
        try:
            file = open(path, "rb")  # noqa: SIM115 - handed to the caller, who closes it
        except FileNotFoundError:
            raise not_found from None
        try:
            size = os.fstat(file.fileno()).st_size
            try:
                digest = Path(f"{path}.sha256").read_text().split()[0]
            except (FileNotFoundError, IndexError):
                raise not_found from None
            manifest = _read_manifest(file, size)
            file.seek(0)
        except BaseException:
            file.close()
            raise
        info = SnapshotInfo(
            name=snapshot,
            collection=collection,
            path=path,
            size=size,
            sha256=digest,
            created_at=manifest.created_at,
            seq=manifest.seq,
            points=manifest.points,
        )
        return info, file

    def delete(self, collection: str, snapshot: str) -> None:
        """Delete one snapshot; raises :class:`SnapshotNotFound` (also to the second of
        two requests deleting it at once)."""
        path = self.root / collection / f"{validate_snapshot_name(snapshot)}.tar"
        try:
            path.unlink()
        except FileNotFoundError:
            raise SnapshotNotFound(
                f"collection {collection!r} has no snapshot {snapshot!r}"
            ) from None
        Path(f"{path}.sha256").unlink(missing_ok=True)

    @contextmanager
    def upload(self) -> Iterator[Path]:
        """A path here for a snapshot being received, removed when done."""
        path = self.root / f".upload-{uuid.uuid4().hex}.tar"
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)


def unpack(
    tar_path: Path, sha256: str, *, name: str, store_path: Path, index_path: Path | None
) -> Manifest:
    """Check the snapshot at ``tar_path`` and write its store to ``store_path``, renamed to
    collection ``name`` (and its index file to ``index_path``, if given and present).

    Returns the manifest. Raises :class:`ChecksumMismatch` if the file's SHA-256 is not
    ``sha256``, and :class:`InvalidSnapshot` for anything damaged, unsafe or inconsistent;
    the caller removes what was written.
    """
    expected = checked_sha256(sha256)
    actual = _sha256_file(tar_path)
    if actual != expected:
        raise ChecksumMismatch(f"the snapshot's SHA-256 is {actual}, not {expected}")
    with open(tar_path, "rb") as f:
        manifest = _extract(f, os.fstat(f.fileno()).st_size, {STORE: store_path, INDEX: index_path})
    config = manifest.config.model_copy(update={"name": name})
    _check_store(store_path, manifest, config)
    return manifest


# -- writing -------------------------------------------------------------------------------


def _config_json(config: CollectionConfig) -> bytes:
    return orjson.dumps(config.model_dump(mode="json"), option=orjson.OPT_INDENT_2)


def _seal_store_copy(path: Path) -> tuple[int, int]:
    """Make the backup one self-contained file (no WAL); return its seq and point count."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        (seq,) = conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
        (points,) = conn.execute("SELECT count(*) FROM points").fetchone()
    return int(orjson.loads(seq)), int(points)


def _write_tar(path: Path, manifest: Manifest, files: dict[MemberName, Path]) -> None:
    mtime = int(manifest.created_at.timestamp())
    with open(path, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
            body = orjson.dumps(manifest.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
            tar.addfile(_tar_info(MANIFEST, len(body), mtime), io.BytesIO(body))
            for member, file in files.items():
                with open(file, "rb") as f:
                    tar.addfile(_tar_info(member, file.stat().st_size, mtime), f)
        raw.flush()
        os.fsync(raw.fileno())


def _tar_info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    return info


# -- reading -------------------------------------------------------------------------------


def _read_manifest(f: IO[bytes], size: int) -> Manifest:
    """The manifest of a snapshot file (its first member), without reading the rest."""
    try:
        _scan_headers(f, size)
        f.seek(0)
        with tarfile.open(fileobj=f, mode="r:") as tar:
            member = tar.next()
            if member is None or _checked_name(member) != MANIFEST:
                raise InvalidSnapshot(f"the first member must be {MANIFEST}")
            return _parse_manifest(_read_small(tar, member))
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidSnapshot(f"not a readable tar file: {exc}") from None


def _extract(f: IO[bytes], size: int, targets: dict[str, Path | None]) -> Manifest:
    """Check every member against the manifest; copy those with a target path there."""
    try:
        _scan_headers(f, size)
        f.seek(0)
        with tarfile.open(fileobj=f, mode="r:") as tar:
            manifest: Manifest | None = None
            config: bytes | None = None
            seen: set[str] = set()
            for member in tar:
                name = _checked_name(member)
                if name in seen:
                    raise InvalidSnapshot(f"member {name!r} appears twice")
                seen.add(name)
                if manifest is None:
                    if name != MANIFEST:
                        raise InvalidSnapshot(f"the first member must be {MANIFEST}")
                    manifest = _parse_manifest(_read_small(tar, member))
                    continue
                entry = manifest.member(name)
                if entry is None:
                    raise InvalidSnapshot(f"member {name!r} is not listed in the manifest")
                if member.size != entry.size:
                    raise InvalidSnapshot(
                        f"member {name!r} has {member.size} bytes; the manifest says {entry.size}"
                    )
                if name == CONFIG:
                    config = _read_small(tar, member)
                    digest = hashlib.sha256(config).hexdigest()
                else:
                    digest = _copy_member(tar, member, targets.get(name))
                if digest != entry.sha256:
                    raise InvalidSnapshot(f"member {name!r} does not match its SHA-256")
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidSnapshot(f"not a readable tar file: {exc}") from None
    if manifest is None:
        raise InvalidSnapshot(f"the snapshot has no {MANIFEST}")
    missing = sorted(m.name for m in manifest.members if m.name not in seen)
    if missing:
        raise InvalidSnapshot(f"members listed in the manifest are missing: {missing}")
    try:
        same = (
            config is not None and CollectionConfig.model_validate_json(config) == manifest.config
        )
    except ValidationError:
        same = False
    if not same:
        raise InvalidSnapshot(f"{CONFIG} does not match the manifest's config")
    return manifest


def _scan_headers(f: IO[bytes], size: int) -> None:
    """Walk the raw tar headers: at most MAX_MEMBERS regular files, each within the file.

    This runs before :mod:`tarfile` sees the file: it reads pax and GNU long-name headers
    whole into memory, so a crafted header could claim gigabytes.
    """
    offset = count = 0
    while offset + _BLOCK <= size:
        f.seek(offset)
        block = f.read(_BLOCK)
        if block == bytes(_BLOCK):
            return  # end of archive
        count += 1
        if count > MAX_MEMBERS:
            raise InvalidSnapshot(f"the snapshot has more than {MAX_MEMBERS} members")
        name = block[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        kind = block[156:157]
        if kind not in _REGULAR:
            what = _KINDS.get(kind, f"entry of type {kind!r}")
            raise InvalidSnapshot(f"member {name!r} is a {what}; only regular files are allowed")
        length = _header_size(block[124:136], name)
        if length > size - offset - _BLOCK:
            raise InvalidSnapshot(
                f"member {name!r} claims {length} bytes, more than the snapshot holds"
            )
        offset += _BLOCK + -(-length // _BLOCK) * _BLOCK


def _header_size(field: bytes, name: str) -> int:
    """The size field of a tar header: octal digits, or GNU base-256 for large files."""
    if field[0] == 0x80:
        return int.from_bytes(field[1:], "big")
    try:
        return int(field.strip(b"\0 ") or b"0", 8)
    except ValueError:
        raise InvalidSnapshot(f"member {name!r} has an unreadable size") from None


def _checked_name(member: tarfile.TarInfo) -> str:
    name = member.name
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("\\") or ":" in name:
        raise InvalidSnapshot(f"member {name!r} has an absolute path")
    if ".." in path.parts or "\\" in name:
        raise InvalidSnapshot(f"member {name!r} points outside the snapshot")
    if not member.isreg():
        raise InvalidSnapshot(f"member {name!r} is not a regular file")
    if name not in (MANIFEST, CONFIG, STORE, INDEX):
        raise InvalidSnapshot(f"unexpected member {name!r}")
    return name


def _read_small(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > MAX_JSON_BYTES:
        raise InvalidSnapshot(f"member {member.name!r} is over {MAX_JSON_BYTES} bytes")
    source = tar.extractfile(member)
    if source is None:
        raise InvalidSnapshot(f"member {member.name!r} is not a regular file")
    with source:
        return source.read()


def _parse_manifest(data: bytes) -> Manifest:
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise InvalidSnapshot(f"{MANIFEST} is not valid: {where}: {first['msg']}") from None


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path | None) -> str:
    """Hash a member's bytes, writing them to ``dest`` (a new file) if given."""
    source = tar.extractfile(member)
    if source is None:
        raise InvalidSnapshot(f"member {member.name!r} is not a regular file")
    digest = hashlib.sha256()
    with ExitStack() as stack:
        stack.enter_context(source)
        out = stack.enter_context(open(dest, "xb")) if dest is not None else None
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
        if out is not None:
            out.flush()
            os.fsync(out.fileno())
    return digest.hexdigest()


# -- checking a restored store -------------------------------------------------------------

_UNTRUSTED_DB_PRAGMAS = ("trusted_schema=OFF", "cell_size_check=ON", "mmap_size=0")


def _check_store(path: Path, manifest: Manifest, config: CollectionConfig) -> None:
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


# -- files -----------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
