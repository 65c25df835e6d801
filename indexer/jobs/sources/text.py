"""Readers of text inputs, line by line: JSONL, and CSV (or TSV) with a header row.

A UTF-8 byte-order mark at the start of a file (Excel's "CSV UTF-8" writes one) is
skipped; byte offsets count it, so a cursor is a position in the file as it is.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from indexer.errors import InvalidInput, JobFailed
from indexer.jobs.sources.base import Cursor, Format, Item, Start, file_fingerprint

# A longer line is rejected and skipped without being held in memory whole.
MAX_LINE_BYTES = 16 * 1024 * 1024


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


class _TextFile:
    """A file read line by line: reading restarts at a byte offset, progress is in bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fingerprint(self) -> dict[str, Any]:
        return file_fingerprint(self.path)

    def total_units(self) -> int | None:
        return self.path.stat().st_size

    def units_done(self, position: int, cursor: Cursor) -> int:
        return cursor if isinstance(cursor, int) else 0


class JsonlSource(_TextFile):
    """One JSON object per line; blank lines are skipped (but keep their position)."""

    format: Format = "jsonl"

    def columns(self) -> list[str] | None:
        return None

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


class CsvSource(_TextFile):
    """A CSV file (a ``.tsv`` one is tab-separated) in UTF-8 whose first row names the
    columns. Every value is a string, ids included."""

    format: Format = "csv"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
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
