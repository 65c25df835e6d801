"""The reader of Parquet inputs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from indexer.errors import JobFailed
from indexer.jobs.sources.base import Cursor, Format, Item, Start, file_fingerprint

_PARQUET_BATCH_ROWS = 4096


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
        return file_fingerprint(self.path)

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
