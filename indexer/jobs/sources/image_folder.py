"""The reader of image folders: records with a ``path`` field (relative to the folder, with
``/`` separators) and a ``label`` field (the top-level subfolder, as torchvision's
``ImageFolder`` names classes; absent for files directly in the folder)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from indexer.jobs.sources.base import Cursor, Format, Item, Start

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


class ImageFolderSource:
    """Image files under a folder, recursively, in sorted path order; hidden files and
    folders and files without an image extension are left out.

    Symlinks to files are followed. A symlink to a folder is followed when it leads out
    of the source folder (to another disk, say); one that leads back into it is not, as
    the images there are read under their own paths, and neither is one that loops back
    to a folder it is in.
    """

    format: Format = "images"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._root = os.path.realpath(path)
        self._fingerprint: dict[str, Any] | None = None

    def columns(self) -> list[str] | None:
        return ["path", "label"]

    def fingerprint(self) -> dict[str, Any]:
        # The images' paths, sizes and modification times: adding, removing or rewriting
        # one changes it. Taken once, by one walk of the folder, that also counts them.
        if self._fingerprint is None:
            digest = hashlib.sha256()
            images = 0
            for parts, entry in self._images():
                try:
                    stat = entry.stat()
                except OSError:  # gone since the folder was listed
                    continue
                digest.update(orjson.dumps(["/".join(parts), stat.st_size, stat.st_mtime_ns]))
                images += 1
            self._fingerprint = {"images": images, "sha256": digest.hexdigest()}
        return dict(self._fingerprint)

    def total_units(self) -> int | None:
        return int(self.fingerprint()["images"])

    def units_done(self, position: int, cursor: Cursor) -> int:
        return position

    def read(self, start: Start, wanted: Sequence[str] = ()) -> Iterator[Item]:
        after = tuple(start.cursor.split("/")) if isinstance(start.cursor, str) else None
        position = start.position
        for parts, _ in self._images(after):
            relative = "/".join(parts)
            record: dict[str, Any] = {"path": relative}
            if len(parts) > 1:
                record["label"] = parts[0]
            yield Item(position, relative, record, None)
            position += 1

    def _images(
        self, after: tuple[str, ...] | None = None
    ) -> Iterator[tuple[tuple[str, ...], os.DirEntry[str]]]:
        """The images of the folder (see :meth:`_walk`)."""
        try:
            root = os.stat(self.path)
        except OSError:
            return iter(())
        return self._walk(str(self.path), (), after, frozenset({(root.st_dev, root.st_ino)}))

    def _walk(
        self,
        folder: str,
        prefix: tuple[str, ...],
        after: tuple[str, ...] | None,
        above: frozenset[tuple[int, int]],
    ) -> Iterator[tuple[tuple[str, ...], os.DirEntry[str]]]:
        """The images under ``folder`` as relative paths (in parts) and entries, depth
        first in name order, which is the order of the part tuples; with ``after``, only
        later ones. ``above`` identifies the folders walked into on the way here."""
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            parts = (*prefix, entry.name)
            try:
                is_dir = entry.is_dir()
                is_image = (
                    not is_dir
                    and entry.is_file()
                    and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES
                )
            except OSError:  # a link that cannot be resolved
                continue
            if is_dir:
                if after is None or parts >= after[: len(parts)]:
                    identity = self._folder_to_walk(entry, above)
                    if identity is not None:
                        yield from self._walk(entry.path, parts, after, above | {identity})
            elif is_image and (after is None or parts > after):
                yield parts, entry

    def _folder_to_walk(
        self, entry: os.DirEntry[str], above: frozenset[tuple[int, int]]
    ) -> tuple[int, int] | None:
        """The (device, inode) of the folder at ``entry``, or None for a folder to leave
        out: a symlink back into the source folder, or a loop."""
        try:
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if os.path.commonpath([target, self._root]) == self._root:
                    return None
            stat = entry.stat()
        except OSError:
            return None
        identity = (stat.st_dev, stat.st_ino)
        return None if identity in above else identity
