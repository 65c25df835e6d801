"""The snapshot area of a data folder: taking, listing, getting and deleting snapshots, and
unpacking one for a restore."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import orjson

from indexer.collection import INDEX_FILE, Collection, CollectionConfig
from indexer.durable import fsync_dir
from indexer.errors import ChecksumMismatch, InvalidSnapshot, SnapshotNotFound
from indexer.snapshots.archive import extract, read_manifest, sha256_file, write_tar
from indexer.snapshots.manifest import (
    CONFIG,
    FORMAT,
    INDEX,
    SNAPSHOT_NAME,
    STORE,
    Manifest,
    MemberEntry,
    MemberName,
    SnapshotInfo,
    checked_sha256,
    validate_snapshot_name,
)
from indexer.snapshots.store_check import check_store

log = logging.getLogger(__name__)


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
                    MemberEntry(name=member, size=path.stat().st_size, sha256=sha256_file(path))
                    for member, path in files.items()
                ],
            )
            partial = work / "snapshot.tar"
            write_tar(partial, manifest, files)
            digest = sha256_file(partial)
            tar_path = folder / f"{name}.tar"
            checksum = work / "snapshot.tar.sha256"
            checksum.write_text(f"{digest}  {tar_path.name}\n")
            os.replace(checksum, folder / f"{tar_path.name}.sha256")
            os.replace(partial, tar_path)
            fsync_dir(folder)
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
            manifest = read_manifest(file, size)
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
    actual = sha256_file(tar_path)
    if actual != expected:
        raise ChecksumMismatch(f"the snapshot's SHA-256 is {actual}, not {expected}")
    with open(tar_path, "rb") as f:
        manifest = extract(f, os.fstat(f.fileno()).st_size, {STORE: store_path, INDEX: index_path})
    config = manifest.config.model_copy(update={"name": name})
    check_store(store_path, manifest, config)
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


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
