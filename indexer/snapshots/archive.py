"""Snapshot files as tar archives: writing one, and reading one that may be hostile (raw
headers walked before :mod:`tarfile` parses them, members checked against the manifest and
copied only to paths the caller chose)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import IO

import orjson
from pydantic import ValidationError

from indexer.collection import CollectionConfig
from indexer.errors import InvalidSnapshot
from indexer.snapshots.manifest import (
    CONFIG,
    INDEX,
    MANIFEST,
    MAX_JSON_BYTES,
    MAX_MEMBERS,
    STORE,
    Manifest,
    MemberName,
    parse_manifest,
)

CHUNK = 1024 * 1024
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


def write_tar(path: Path, manifest: Manifest, files: dict[MemberName, Path]) -> None:
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


def read_manifest(f: IO[bytes], size: int) -> Manifest:
    """The manifest of a snapshot file (its first member), without reading the rest."""
    try:
        _scan_headers(f, size)
        f.seek(0)
        with tarfile.open(fileobj=f, mode="r:") as tar:
            member = tar.next()
            if member is None or _checked_name(member) != MANIFEST:
                raise InvalidSnapshot(f"the first member must be {MANIFEST}")
            return parse_manifest(_read_small(tar, member))
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidSnapshot(f"not a readable tar file: {exc}") from None


def extract(f: IO[bytes], size: int, targets: dict[str, Path | None]) -> Manifest:
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
                    manifest = parse_manifest(_read_small(tar, member))
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


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path | None) -> str:
    """Hash a member's bytes, writing them to ``dest`` (a new file) if given."""
    source = tar.extractfile(member)
    if source is None:
        raise InvalidSnapshot(f"member {member.name!r} is not a regular file")
    digest = hashlib.sha256()
    with ExitStack() as stack:
        stack.enter_context(source)
        out = stack.enter_context(open(dest, "xb")) if dest is not None else None
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
        if out is not None:
            out.flush()
            os.fsync(out.fileno())
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
