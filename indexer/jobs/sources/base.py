"""What every reader of batch-job inputs yields and answers to (see
:mod:`indexer.jobs.sources`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

Format = Literal["jsonl", "csv", "parquet", "images"]
Cursor = int | str | None
"""Where reading restarts: a byte offset (JSONL, CSV), a relative path (images), or
``None`` (Parquet, which restarts from the position alone)."""


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


def file_fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
