"""Readers of job inputs (indexer/jobs/sources/): each restarts exactly after any record,
skips a byte-order mark, loses only the line of an unclosed quote, follows image folders, and
streams, so that memory does not grow with the input."""

from __future__ import annotations

import codecs
import os
from pathlib import Path
from typing import Any

import pytest

from indexer.jobs.sources import Start, open_source
from tests.support.streaming import read_through, write_input
from tests.unit.jobs.running import rows, write_jsonl

pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")


def assert_restarts_after_each_record(path: Path, fmt: str) -> list[Any]:
    """The records of ``path``, checking that reading from after each gives the rest."""
    source = open_source(path, fmt)  # type: ignore[arg-type]
    items = list(source.read(Start()))
    for k, item in enumerate(items):
        assert list(source.read(Start(item.position + 1, item.cursor))) == items[k + 1 :], k
    return items


def test_each_reader_restarts_exactly_after_any_record(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "a.jsonl", [*rows(5)[:2], "", "{broken", *rows(5)[2:]])
    csv_path = tmp_path / "a.csv"
    csv_path.write_text('id,title\n1,"two\nlines, and a comma"\n\n2,plain\n3,"q ""x"""\n')
    folder = tmp_path / "images"
    for relative in ("b.png", "a/x.png", "a/sub/y.png", "c/z.jpg", "c/notes.txt"):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(b"")
    for path, fmt in ((jsonl, "jsonl"), (csv_path, "csv"), (folder, "images")):
        assert_restarts_after_each_record(path, fmt)
    csv_items = list(open_source(csv_path, "csv").read(Start()))
    assert [i.fields for i in csv_items] == [
        {"id": "1", "title": "two\nlines, and a comma"},
        {"id": "2", "title": "plain"},
        {"id": "3", "title": 'q "x"'},
    ]
    image_items = list(open_source(folder, "images").read(Start()))
    assert [i.fields for i in image_items] == [
        {"path": "a/sub/y.png", "label": "a"},
        {"path": "a/x.png", "label": "a"},
        {"path": "b.png"},
        {"path": "c/z.jpg", "label": "c"},
    ]


def test_a_byte_order_mark_is_skipped_and_cursors_stay_on_record_boundaries(
    tmp_path: Path,
) -> None:
    bom = codecs.BOM_UTF8
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_bytes(bom + b'{"id": 1, "title": "one"}\n{"id": 2, "title": "two"}\n')
    excel = tmp_path / "excel.csv"  # Excel's "CSV UTF-8": a BOM, then quoted names
    excel.write_bytes(bom + b'"id","title"\r\n"1","one"\r\n"2","two"\r\n')
    tsv = tmp_path / "a.tsv"
    tsv.write_bytes(bom + b"id\ttitle\n1\tone\n2\ttwo\n")
    for path, fmt in ((jsonl, "jsonl"), (excel, "csv"), (tsv, "csv")):
        items = assert_restarts_after_each_record(path, fmt)
        assert [(i.position, i.error) for i in items] == [(0, None), (1, None)], path
        assert [str(i.fields["id"]) for i in items] == ["1", "2"], path
        # Cursors are offsets in the file as it is, BOM included.
        raw = path.read_bytes()
        assert items[0].cursor == raw.rindex(b"\n", 0, raw.index(b"two")) + 1, path
    assert open_source(excel, "csv").columns() == ["id", "title"]


def test_an_unclosed_csv_quote_rejects_only_its_line_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('id,title\n1,"one\n2,two\n3,three\n')
    items = assert_restarts_after_each_record(path, "csv")
    assert [(i.position, i.fields) for i in items] == [
        (0, None),
        (1, {"id": "2", "title": "two"}),
        (2, {"id": "3", "title": "three"}),
    ]
    assert items[0].error is not None
    assert "a quoted field is never closed" in items[0].error
    assert "from byte 9" in items[0].error
    # Far from the end of the file, csv's field size limit stops the quote instead.
    long = tmp_path / "long.csv"
    with open(long, "w") as f:
        f.write('id,title\n1,"one\n')
        f.writelines(f"{i},row number {i}\n" for i in range(2, 20_002))
    items = list(open_source(long, "csv").read(Start()))
    assert items[0].fields is None
    assert [i.fields["id"] for i in items[1:] if i.fields] == [str(i) for i in range(2, 20_002)]


def test_an_image_folders_fingerprint_changes_with_its_images(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.png").write_bytes(b"x")
    (folder / "b.png").write_bytes(b"b")

    def fingerprint() -> dict[str, Any]:
        return open_source(folder, "images").fingerprint()

    first = fingerprint()
    assert fingerprint() == first
    (folder / "notes.txt").write_text("not an image")
    assert fingerprint() == first
    (folder / "c").mkdir()
    (folder / "c" / "y.png").write_bytes(b"y")
    added = fingerprint()
    assert added != first
    (folder / "b.png").write_bytes(b"bigger")
    assert fingerprint() != added


def test_an_image_folder_follows_a_symlinked_folder_once_and_never_a_loop(
    tmp_path: Path,
) -> None:
    folder, outside = tmp_path / "photos", tmp_path / "elsewhere"
    (folder / "cats").mkdir(parents=True)
    (folder / "cats" / "a.png").write_bytes(b"a")
    outside.mkdir()
    (outside / "b.png").write_bytes(b"b")
    os.symlink(folder, folder / "loop")  # back to the folder itself
    os.symlink(folder / "cats", folder / "alias")  # another name for a folder in it
    os.symlink(folder / "gone", folder / "broken")
    os.symlink(outside, folder / "more")  # a folder outside: read, under this name
    os.symlink(outside, outside / "again")  # a loop out there
    items = assert_restarts_after_each_record(folder, "images")
    assert [i.cursor for i in items] == ["cats/a.png", "more/b.png"]
    assert open_source(folder, "images").fingerprint()["images"] == 2


def test_parquet_reader_starts_inside_a_row_group(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(rows(230)), path, row_group_size=50)
    source = open_source(path, "parquet")
    items = list(source.read(Start(), ["id", "title"]))
    assert [i.position for i in items] == list(range(230))
    assert items[0].fields == {"id": 0, "title": "note 0: item number 0"}  # only wanted columns
    assert list(source.read(Start(123), ["id", "title"])) == items[123:]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_reading_streams_so_memory_does_not_grow_with_the_input(tmp_path: Path, fmt: str) -> None:
    """The reading half of a job (reader, batching, the pipeline's queues) in a process
    of its own, over inputs of 40,000 and 400,000 records: about the same peak memory.
    ``python -m bench.streaming`` measures it up to 10 million records."""
    peaks = {}
    for n in (40_000, 400_000):
        path = tmp_path / f"in{n}.{fmt}"
        write_input(path, fmt, n)
        written, peaks[n], _ = read_through(path, fmt)
        assert written == n
    # Ten times the input, about the same peak: a few batches in flight (each 4,096
    # records and their 384-d vectors, ~11 MB) and allocator slack, where holding the
    # input would take hundreds of MiB more.
    assert peaks[400_000] - peaks[40_000] < 48 * 1024, peaks


def test_parquet_is_read_a_row_group_at_a_time(tmp_path: Path) -> None:
    """Arrow's own memory (outside Python's, so the test above sees it only in the RSS)
    holds one row group, not every one read so far: ParquetFile.iter_batches, used
    before, kept 12 MiB after these 100 row groups, and more the longer the file."""
    path = tmp_path / "rows.parquet"
    write_input(path, "parquet", 500_000, row_group=5_000)
    source = open_source(path, "parquet")
    peak = count = 0
    for count, _ in enumerate(source.read(Start(), ("id", "text", "n")), start=1):
        if count % 2_500 == 0:
            peak = max(peak, pa.total_allocated_bytes())
    assert count == 500_000
    assert peak < 3 * 2**20, peak  # a row group of 5,000 records is ~0.6 MiB
