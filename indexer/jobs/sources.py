"""Readers of batch-job inputs: JSONL, CSV, Parquet files and folders of images.

Every reader streams: it holds one line, one CSV record, one Parquet record batch or one
directory listing at a time, whatever the size of the input. Each yields :class:`Item`\\ s in
input order: the record's *position* (its 0-based index in the input: the JSONL line
counting blank ones, the CSV data row, the Parquet row, the image in sorted path order),
a *cursor* from which reading can restart just after it, and either its fields or the
reason it could not be read.

An image folder reads as records with a ``path`` field (relative to the folder, with
``/`` separators) and a ``label`` field (the top-level subfolder, as torchvision's
``ImageFolder`` names classes; absent for files directly in the folder).

A UTF-8 byte-order mark at the start of a JSONL or CSV file (Excel's "CSV UTF-8" writes
one) is skipped; byte offsets count it, so a cursor is a position in the file as it is.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, Protocol

import orjson

from indexer.errors import InvalidInput, JobFailed

__all__ = [
    "IMAGE_SUFFIXES",
    "Cursor",
    "Format",
    "Item",
    "Source",
    "Start",
    "detect_format",
    "open_source",
]

Format = Literal["jsonl", "csv", "parquet", "images"]
Cursor = int | str | None
"""Where reading restarts: a byte offset (JSONL, CSV), a relative path (images), or
``None`` (Parquet, which restarts from the position alone)."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_SUFFIXES: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# A longer line is rejected and skipped without being held in memory whole.
MAX_LINE_BYTES = 16 * 1024 * 1024
_PARQUET_BATCH_ROWS = 4096


class Item(NamedTuple):
    """One record of the input, read or not."""

    position: int
    cursor: Cursor
    fields: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Start:
    """Where to begin reading: the position of the first record to read, and its cursor."""

    position: int = 0
    cursor: Cursor = None


class Source(Protocol):
    """An input to index, read record by record."""

    @property
    def path(self) -> Path: ...

    @property
    def format(self) -> Format: ...

    def columns(self) -> list[str] | None:
        """The fields every record has (CSV header, Parquet schema, image records), or
        ``None`` where each record has its own (JSONL)."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """What changes when the input changes: a file's size and modification time, the
        paths, sizes and modification times of a folder's images."""
        ...

    def total_units(self) -> int | None:
        """Size of the whole input in the units of :meth:`units_done` (for an ETA)."""
        ...

    def units_done(self, position: int, cursor: Cursor) -> int:
        """How much of the input lies before ``position``/``cursor``."""
        ...

    def read(self, start: Start, wanted: Sequence[str] = ()) -> Iterator[Item]:
        """The records from ``start`` on, in input order. ``wanted`` names the fields the
        job uses, so that a columnar reader reads only those; empty means all."""
        ...


def detect_format(path: Path) -> Format:
    """The format of ``path``: ``images`` for a folder, else from the file's extension.

    Raises:
        InvalidInput: the path does not exist, or its extension names no known format.
    """
    if path.is_dir():
        return "images"
    if not path.exists():
        raise InvalidInput(f"source {str(path)!r} does not exist")
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        known = ", ".join(sorted(_SUFFIXES))
        raise InvalidInput(
            f"cannot tell the format of {str(path)!r} from its extension (known: {known}); "
            "pass --format jsonl, csv or parquet"
        )
    return found


def open_source(path: Path, fmt: Format) -> Source:
    """A reader of ``path`` as ``fmt``.

    Raises:
        InvalidInput: the path is missing or of the wrong kind (a folder for a file format).
        JobFailed: the file cannot be opened as ``fmt`` at all.
    """
    if fmt == "images":
        if not path.is_dir():
            raise InvalidInput(f"an image source must be a folder; {str(path)!r} is not one")
        return ImageFolderSource(path)
    if not path.is_file():
        raise InvalidInput(f"source {str(path)!r} does not exist or is not a file")
    if fmt == "jsonl":
        return JsonlSource(path)
    if fmt == "csv":
        return CsvSource(path)
    return ParquetSource(path)


def _file_fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _skip_bom(stream: IO[bytes]) -> int:
    """Move a stream at the start of a file past its UTF-8 byte-order mark, if it has
    one; the offset reading goes on from."""
    if stream.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
        return len(codecs.BOM_UTF8)
    stream.seek(0)
    return 0


def _read_line(stream: IO[bytes]) -> tuple[bytes | None, int]:
    """The next line and the bytes it took (0 at the end of the stream). A line longer
    than :data:`MAX_LINE_BYTES` is skipped up to its end and returned as ``None``."""
    line = stream.readline(MAX_LINE_BYTES)
    if len(line) < MAX_LINE_BYTES or line.endswith(b"\n"):
        return line, len(line)
    consumed = len(line)
    while line and not line.endswith(b"\n"):
        line = stream.readline(MAX_LINE_BYTES)
        consumed += len(line)
    return None, consumed


class JsonlSource:
    """One JSON object per line; blank lines are skipped (but keep their position)."""

    format: Format = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path

    def columns(self) -> list[str] | None:
        return None

    def fingerprint(self) -> dict[str, Any]:
        return _file_fingerprint(self.path)

    def total_units(self) -> int | None:
        return self.path.stat().st_size

    def units_done(self, position: int, cursor: Cursor) -> int:
        return cursor if isinstance(cursor, int) else 0

    def read(self, start: Start, wanted: Sequence[str] = ()) -> Iterator[Item]:
        position = start.position
        loads = orjson.loads
        with open(self.path, "rb") as stream:
            if isinstance(start.cursor, int):
                offset = start.cursor
                stream.seek(offset)
            else:
                offset = _skip_bom(stream)
            while True:
                line, consumed = _read_line(stream)
                if not consumed:
                    return
                offset += consumed
                if line is None:
                    yield Item(position, offset, None, f"line longer than {MAX_LINE_BYTES} bytes")
                elif line.strip():
                    try:
                        record = loads(line)
                    except orjson.JSONDecodeError as exc:
                        yield Item(position, offset, None, f"malformed JSON: {exc}")
                    else:
                        if isinstance(record, dict):
                            yield Item(position, offset, record, None)
                        else:
                            kind = type(record).__name__
                            yield Item(position, offset, None, f"not a JSON object but a {kind}")
                position += 1


class CsvSource:
    """A CSV file (a ``.tsv`` one is tab-separated) in UTF-8 whose first row names the
    columns. Every value is a string, ids included."""

    format: Format = "csv"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        with open(path, "rb") as stream:
            header, self._body_offset = self._header(stream)
        self._columns = header

    def _header(self, stream: IO[bytes]) -> tuple[list[str], int]:
        _skip_bom(stream)  # before the parser: a quoted first name must start the line
        lines = _Lines(stream)
        try:
            header = next(csv.reader(lines, delimiter=self._delimiter))
        except StopIteration:
            raise JobFailed(
                f"no records in {str(self.path)!r}: it is empty, not even a header row"
            ) from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise JobFailed(f"cannot read the header row of {str(self.path)!r}: {exc}") from None
        header = [name.strip() for name in header]
        if len(set(header)) != len(header):
            raise InvalidInput(f"the header row of {str(self.path)!r} repeats a column name")
        return header, lines.offset

    def columns(self) -> list[str] | None:
        return list(self._columns)

    def fingerprint(self) -> dict[str, Any]:
        return _file_fingerprint(self.path)

    def total_units(self) -> int | None:
        return self.path.stat().st_size

    def units_done(self, position: int, cursor: Cursor) -> int:
        return cursor if isinstance(cursor, int) else 0

    def read(self, start: Start, wanted: Sequence[str] = ()) -> Iterator[Item]:
        columns = self._columns
        width = len(columns)
        position = start.position
        with open(self.path, "rb") as stream:
            stream.seek(start.cursor if isinstance(start.cursor, int) else self._body_offset)
            lines = _Lines(stream)
            reader = csv.reader(lines, delimiter=self._delimiter, strict=True)
            while True:
                record_start = lines.offset
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except (csv.Error, UnicodeDecodeError) as exc:
                    error = f"malformed CSV row: {exc}"
                    if _unclosed_quote(exc):
                        # The quote took every line after it as its field, to the end of
                        # the file or to csv's field size limit: those lines are records
                        # of their own. Skip only the line it opened on.
                        stream.seek(record_start)
                        _read_line(stream)
                        lines = _Lines(stream)
                        error = (
                            f"malformed CSV row: a quoted field is never closed ({exc}); "
                            f"only its first line, from byte {record_start}, was skipped"
                        )
                    # Else csv stopped at the line it could not parse: read on after it.
                    reader = csv.reader(lines, delimiter=self._delimiter, strict=True)
                    yield Item(position, lines.offset, None, error)
                    position += 1
                    continue
                if not row:  # a blank line
                    continue
                if len(row) > width:
                    error = f"row has {len(row)} values for {width} columns"
                    yield Item(position, lines.offset, None, error)
                else:
                    # A short row lacks its last fields: they are missing, not empty.
                    yield Item(position, lines.offset, dict(zip(columns, row, strict=False)), None)
                position += 1


def _unclosed_quote(error: Exception) -> bool:
    """Whether csv gave up on a record because a quoted field in it never ended."""
    return isinstance(error, csv.Error) and str(error).startswith(
        ("unexpected end of data", "field larger than field limit")
    )


class _Lines:
    """Decoded lines of a binary stream for ``csv.reader``, keeping the byte offset of
    the end of the last line handed out: after a record, where the next one starts."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.offset = stream.tell()
        self._decode = codecs.getdecoder("utf-8")

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line, consumed = _read_line(self._stream)
        if not consumed:
            raise StopIteration
        self.offset += consumed
        if line is None:
            raise csv.Error(f"line longer than {MAX_LINE_BYTES} bytes")
        text: str = self._decode(line)[0]
        return text


class ParquetSource:
    """A Parquet file, read one record batch at a time (only the columns the job uses)."""

    format: Format = "parquet"

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self.path = path
        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a bad file
            raise JobFailed(f"cannot read {str(path)!r} as Parquet: {exc}") from None
        self._columns: list[str] = list(self._file.schema_arrow.names)

    def columns(self) -> list[str] | None:
        return list(self._columns)

    def fingerprint(self) -> dict[str, Any]:
        return _file_fingerprint(self.path)

    def total_units(self) -> int | None:
        return int(self._file.metadata.num_rows)

    def units_done(self, position: int, cursor: Cursor) -> int:
        return position

    def read(self, start: Start, wanted: Sequence[str] = ()) -> Iterator[Item]:
        metadata = self._file.metadata
        first_row = 0
        group = 0
        while group < metadata.num_row_groups:
            rows = metadata.row_group(group).num_rows
            if first_row + rows > start.position:
                break
            first_row += rows
            group += 1
        if group == metadata.num_row_groups:
            return
        skip = start.position - first_row
        position = first_row
        columns = [name for name in self._columns if name in wanted] if wanted else None
        # One row group at a time: ParquetFile.iter_batches keeps buffers of the row
        # groups it has read, so its memory grows with the file (~25 MiB a million rows).
        for index in range(group, metadata.num_row_groups):
            table = self._file.read_row_group(index, columns=columns, use_threads=False)
            for batch in table.to_batches(max_chunksize=_PARQUET_BATCH_ROWS):
                names = batch.schema.names
                values_by_column = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                for values in zip(*values_by_column, strict=True):
                    if skip:
                        skip -= 1
                    else:
                        record = {n: v for n, v in zip(names, values, strict=True) if v is not None}
                        yield Item(position, None, record, None)
                    position += 1
            del table


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
