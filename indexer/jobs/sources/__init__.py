"""Readers of batch-job inputs: JSONL, CSV, Parquet files and folders of images.

Every reader streams: it holds one line, one CSV record, one Parquet record batch or one
directory listing at a time, whatever the size of the input. Each yields :class:`Item`\\ s in
input order: the record's *position* (its 0-based index in the input: the JSONL line
counting blank ones, the CSV data row, the Parquet row, the image in sorted path order),
a *cursor* from which reading can restart just after it, and either its fields or the
reason it could not be read.

One module per kind of input: ``text`` (JSONL, CSV), ``parquet``, ``image_folder``;
``base`` holds what they all yield and answer to.
"""

from __future__ import annotations

from pathlib import Path

from indexer.errors import InvalidInput
from indexer.jobs.sources.base import Cursor, Format, Item, Source, Start
from indexer.jobs.sources.image_folder import IMAGE_SUFFIXES, ImageFolderSource
from indexer.jobs.sources.parquet import ParquetSource
from indexer.jobs.sources.text import CsvSource, JsonlSource

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

_SUFFIXES: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


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
