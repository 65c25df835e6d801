"""Batch indexing jobs: sources, rejects, resuming after a kill, and the `vecserve index` CLI."""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("skimage")
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")

from PIL import Image  # noqa: E402  (after the skips: PIL comes with the embed extra)
from skimage import data as photos  # noqa: E402

from indexer import CollectionExists, Engine, InvalidInput  # noqa: E402
from indexer.embedders import Embedder, EmbedderRegistry, default_embedder_configs  # noqa: E402
from indexer.errors import JobFailed  # noqa: E402
from indexer.jobs import IndexJobConfig, JobSummary, ProgressLine, run_index_job  # noqa: E402
from indexer.jobs.pipeline import run_pipeline  # noqa: E402
from indexer.jobs.remote import Retries, retry_after  # noqa: E402
from indexer.jobs.sources import Start, open_source  # noqa: E402
from service.cli import main  # noqa: E402

SENTENCES = {
    "cat": "The cat sleeps on the warm windowsill all afternoon.",
    "rain": "Heavy rain flooded the streets of the old town last night.",
    "stocks": "Stock markets fell sharply after the central bank raised rates.",
    "guitar": "She practises the guitar every evening after dinner.",
    "volcano": "The volcano erupted, covering nearby villages in ash.",
}


@pytest.fixture(scope="module")
def registry() -> EmbedderRegistry:
    return EmbedderRegistry(default_embedder_configs())


@pytest.fixture(scope="module")
def minilm(registry: EmbedderRegistry) -> Embedder:
    return registry.get("minilm")


def rows(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "title": f"note {i}: item number {i}", "n": i} for i in range(n)]


def write_jsonl(path: Path, records: list[Any]) -> Path:
    with open(path, "w") as f:
        for record in records:
            f.write(record if isinstance(record, str) else json.dumps(record))
            f.write("\n")
    return path


def job(source: Path, data: Path, **options: Any) -> IndexJobConfig:
    return IndexJobConfig(source=source, collection="docs", data=data, **options)


def run(
    config: IndexJobConfig, engine: Engine, registry: EmbedderRegistry, **kw: Any
) -> JobSummary:
    return run_index_job(config, engine=engine, registry=registry, **kw)


def read_rejects(summary: JobSummary) -> list[dict[str, Any]]:
    assert summary.rejects_path is not None
    return [json.loads(line) for line in summary.rejects_path.read_text().splitlines()]


def all_ids(engine: Engine, name: str = "docs") -> list[Any]:
    collection = engine.get_collection(name)
    ids: list[Any] = []
    cursor = None
    while True:
        points, cursor = collection.scroll(limit=1000, cursor=cursor)
        ids.extend(p.id for p in points)
        if cursor is None:
            return ids


# -- sources -----------------------------------------------------------------------------


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


# -- jobs over each format ----------------------------------------------------------------


def test_jsonl_records_become_points_with_the_embedded_text_and_payload(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry, minilm: Embedder
) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", rows(200))
    summary = run(
        job(source, engine.path, text_field="title", payload_fields=("n",), batch_size=64),
        engine,
        registry,
    )
    assert (summary.indexed, summary.rejected, summary.rejects_path) == (200, 0, None)
    collection = engine.get_collection("docs")
    assert collection.count() == 200
    assert collection.config.embedder == "minilm"
    assert collection.config.dim == 384
    point = collection.get([17])[0]
    assert point.payload == {"n": 17}
    expected = minilm.embed_texts(["note 17: item number 17"])[0]
    np.testing.assert_allclose(point.vector, expected, atol=1e-4)  # type: ignore[arg-type]


def test_csv_ids_are_strings_and_quoted_fields_survive(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    source = tmp_path / "docs.csv"
    with open(source, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sku", "name", "colour"])
        for i in range(300):
            writer.writerow([f"sku-{i}", f"shirt, size {i}\nsecond line", "red"])
    config = job(source, engine.path, id_field="sku", text_field="name", payload_fields=("colour",))
    summary = run(config, engine, registry)
    assert summary.indexed == 300
    assert engine.get_collection("docs").get(["sku-299"])[0].payload == {"colour": "red"}


def test_parquet_job_reads_only_the_columns_it_uses(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    source = tmp_path / "docs.parquet"
    table = pa.Table.from_pylist([{**r, "blob": b"\x00" * 10} for r in rows(250)])
    pq.write_table(table, source, row_group_size=64)
    summary = run(
        job(source, engine.path, text_field="title", payload_fields=("n",), batch_size=100),
        engine,
        registry,
    )
    assert summary.indexed == 250
    assert engine.get_collection("docs").get([249])[0].payload == {"n": 249}


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(photos, name)()).convert("RGB")


def test_image_folder_is_indexed_with_labels_and_a_truncated_image_is_rejected(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    folder = tmp_path / "photos"
    (folder / "cats").mkdir(parents=True)
    (folder / "drinks").mkdir()
    _photo("chelsea").save(folder / "cats" / "chelsea.png")
    _photo("chelsea").rotate(90).save(folder / "cats" / "chelsea-turned.jpg", quality=90)
    _photo("coffee").save(folder / "drinks" / "coffee.jpg", quality=90)
    _photo("astronaut").save(folder / "astronaut.png")
    jpeg = io.BytesIO()
    _photo("coffee").save(jpeg, format="JPEG", quality=90)
    (folder / "drinks" / "cut.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (folder / "drinks" / "README.txt").write_text("not an image")

    summary = run(job(folder, engine.path, label_from_folder=True), engine, registry)

    assert (summary.indexed, summary.rejected) == (4, 1)
    [reject] = read_rejects(summary)
    assert reject["id"] == "drinks/cut.jpg"
    assert "cannot decode image" in reject["reason"]
    collection = engine.get_collection("docs")
    assert collection.config.embedder == "efficientnet-lite0"
    assert collection.get(["cats/chelsea.png"])[0].payload == {
        "path": "cats/chelsea.png",
        "label": "cats",
    }
    assert collection.get(["astronaut.png"])[0].payload == {"path": "astronaut.png"}
    turned = collection.get(["cats/chelsea-turned.jpg"])[0].vector
    assert collection.search(turned, k=2)[0][1].id == "cats/chelsea.png"


def test_a_finished_image_folder_job_indexes_images_added_since(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo("chelsea").save(folder / "chelsea.png")
    config = job(folder, engine.path)
    assert run(config, engine, registry).indexed == 1
    assert run(config, engine, registry).already_done
    _photo("coffee").save(folder / "coffee.png")
    again = run(config, engine, registry)
    assert not again.already_done
    assert sorted(all_ids(engine)) == ["chelsea.png", "coffee.png"]


def test_an_image_field_names_files_next_to_a_source_of_a_named_format(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    (tmp_path / "img").mkdir()
    _photo("coffee").save(tmp_path / "img" / "coffee.png")
    source = write_jsonl(
        tmp_path / "products.txt",
        [
            {"sku": 1, "picture": "img/coffee.png", "name": "espresso cup"},
            {"sku": 2, "picture": "img/gone.png", "name": "lost"},
        ],
    )
    config = job(
        source,
        engine.path,
        format="jsonl",
        id_field="sku",
        image_field="picture",
        payload_fields=("name",),
    )
    summary = run(config, engine, registry)
    assert (summary.indexed, summary.rejected) == (1, 1)
    assert engine.get_collection("docs").get([1])[0].payload == {"name": "espresso cup"}
    [reject] = read_rejects(summary)
    assert reject["id"] == 2
    assert reject["reason"].startswith("cannot read image file")


# -- rejects, reruns, failures ---------------------------------------------------------


def test_rejected_records_are_listed_with_position_id_and_reason(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    source = write_jsonl(
        tmp_path / "docs.jsonl",
        [
            {"id": "a", "title": "fine"},
            '{"id": "b", "title": ',
            {"title": "who am I"},
            {"id": "c", "body": "no title"},
            {"id": "d", "title": 42},
            {"id": "e", "title": "   "},
            "[1, 2]",
            {"id": 1.5, "title": "float id"},
            "",
            {"id": "f", "title": "also fine"},
        ],
    )
    summary = run(job(source, engine.path, text_field="title", batch_size=3), engine, registry)
    assert (summary.indexed, summary.rejected) == (2, 7)
    rejects = read_rejects(summary)
    assert [(r["position"], r["id"]) for r in rejects] == [
        (1, None),
        (2, None),
        (3, "c"),
        (4, "d"),
        (5, "e"),
        (6, None),
        (7, None),
    ]
    reasons = [r["reason"] for r in rejects]
    assert reasons[0].startswith("malformed JSON")
    assert reasons[1:5] == [
        "missing field 'id'",
        "missing field 'title'",
        "field 'title' is a int, not a string",
        "field 'title' is empty",
    ]
    assert reasons[5] == "not a JSON object but a list"
    assert reasons[6].startswith("invalid id in field 'id'")
    assert sorted(all_ids(engine)) == ["a", "f"]


def test_a_finished_job_run_again_changes_nothing_until_its_source_changes(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", [*rows(100), "{bad"])
    config = job(source, engine.path, text_field="title")
    first = run(config, engine, registry)
    seq = engine.get_collection("docs").store.seq
    again = run(config, engine, registry)
    assert again.already_done
    assert (again.indexed, again.total_indexed, again.total_rejected) == (0, 100, 1)
    assert engine.get_collection("docs").store.seq == seq
    assert first.rejects_path is not None
    assert len(first.rejects_path.read_text().splitlines()) == 1

    write_jsonl(source, [*rows(120), "{bad"])
    changed = run(config, engine, registry)
    assert (changed.indexed, changed.rejected, changed.resumed_from) == (120, 1, 0)
    assert changed.replaced == 100  # the points of the first version, written again
    assert len(first.rejects_path.read_text().splitlines()) == 1
    assert engine.get_collection("docs").count() == 120


@pytest.mark.parametrize("batch_size", [1, 2, 100])
def test_a_repeated_id_counts_as_indexed_and_replaced_however_records_are_batched(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry, batch_size: int
) -> None:
    titles = [(1, "one"), (2, "two"), (1, "uno"), (3, "three"), (1, "eins")]
    source = write_jsonl(tmp_path / "docs.jsonl", [{"id": i, "title": t} for i, t in titles])
    config = job(source, engine.path, text_field="title", payload_fields=("title",))
    summary = run(config.model_copy(update={"batch_size": batch_size}), engine, registry)
    assert (summary.indexed, summary.replaced, summary.rejected) == (5, 2, 0)
    assert summary.total_indexed == 5
    collection = engine.get_collection("docs")
    assert collection.count() == 3
    assert collection.get([1])[0].payload == {"title": "eins"}  # the last record wins


class StopAfterFirstBatch:
    """A progress display that stops the job after its first batch is committed."""

    def start(self, *, done_before: int, units_done: int, units_total: int | None) -> None:
        pass

    def update(self, *, indexed: int, rejected: int, units_done: int) -> None:
        raise RuntimeError("stopped")

    def finish(self) -> None:
        pass


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("excel.csv", '"id","title"\r\n' + "".join(f'"{i}","note {i}"\r\n' for i in range(10))),
        (
            "docs.jsonl",
            "".join(json.dumps({"id": str(i), "title": f"note {i}"}) + "\n" for i in range(10)),
        ),
    ],
)
def test_a_file_with_a_byte_order_mark_is_indexed_whole_after_a_resume(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry, name: str, text: str
) -> None:
    source = tmp_path / name
    source.write_bytes(codecs.BOM_UTF8 + text.encode())
    config = job(source, engine.path, text_field="title", payload_fields=("title",), batch_size=4)
    with pytest.raises(RuntimeError, match="stopped"):
        run(config, engine, registry, progress=StopAfterFirstBatch())
    summary = run(config, engine, registry)
    assert (summary.resumed_from, summary.indexed, summary.rejected) == (4, 6, 0)
    assert (summary.total_indexed, summary.total_rejected) == (10, 0)
    collection = engine.get_collection("docs")
    assert sorted(all_ids(engine)) == sorted(str(i) for i in range(10))
    assert collection.get(["0"])[0].payload == {"title": "note 0"}


def test_an_unclosed_csv_quote_loses_one_record_not_the_rest_of_the_file(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    source = tmp_path / "docs.csv"
    source.write_text('id,title\n1,"one\n2,two\n3,three\n')
    summary = run(job(source, engine.path, text_field="title"), engine, registry)
    assert (summary.indexed, summary.rejected) == (2, 1)
    [reject] = read_rejects(summary)
    assert reject["position"] == 0
    assert "a quoted field is never closed" in reject["reason"]
    assert sorted(all_ids(engine)) == ["2", "3"]


class NoModels(EmbedderRegistry):
    """The allowlist, with models that must not be loaded."""

    def get(self, name: str) -> Embedder:
        raise AssertionError(f"model {name!r} loaded")


@pytest.mark.parametrize(
    "name", ["empty.jsonl", "blank.jsonl", "empty.csv", "header.csv", "empty.parquet", "photos"]
)
def test_an_input_with_no_records_fails_before_a_model_or_a_collection_is_made(
    tmp_path: Path, engine: Engine, name: str
) -> None:
    source = tmp_path / name
    if name == "photos":
        source.mkdir()
        (source / "README.txt").write_text("no images yet")
    elif name.endswith(".parquet"):
        empty = pa.table({"id": pa.array([], pa.int64()), "title": pa.array([], pa.string())})
        pq.write_table(empty, source)
    else:
        source.write_text({"blank.jsonl": "\n\n", "header.csv": "id,title\n"}.get(name, ""))
    config = (
        job(source, engine.path)
        if name == "photos"
        else job(source, engine.path, text_field="title")
    )
    with pytest.raises(JobFailed, match=r"^no (records|images) in '.*'"):
        run(config, engine, NoModels(default_embedder_configs()))
    assert engine.list_collections() == []


def test_a_job_whose_every_record_is_rejected_fails(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", [{"id": i, "title": i} for i in range(10)])
    with pytest.raises(JobFailed, match="all 10 were rejected") as caught:
        run(job(source, engine.path, text_field="title"), engine, registry)
    assert "is a int, not a string" in caught.value.message


def test_a_collection_of_another_embedder_is_refused(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    engine.create_collection("docs", dim=384)
    source = write_jsonl(tmp_path / "docs.jsonl", rows(3))
    with pytest.raises(CollectionExists, match="vectors of no embedder"):
        run(job(source, engine.path, text_field="title"), engine, registry)


def test_an_image_embedder_is_refused_for_text(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", rows(3))
    config = job(source, engine.path, text_field="title", embedder="efficientnet-lite0")
    with pytest.raises(InvalidInput, match="cannot embed texts"):
        run(config, engine, registry)


def test_search_finds_a_paraphrase_of_an_indexed_sentence(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry, minilm: Embedder
) -> None:
    source = write_jsonl(
        tmp_path / "docs.jsonl", [{"id": k, "text": v} for k, v in SENTENCES.items()]
    )
    run(job(source, engine.path, text_field="text"), engine, registry)
    collection = engine.get_collection("docs")
    queries = {
        "cat": "A kitten naps by the sunny window.",
        "stocks": "Shares dropped when interest rates went up.",
        "volcano": "Ash from the eruption buried the villages.",
    }
    vectors = minilm.embed_texts(list(queries.values()))
    found = [hits[0].id for hits in collection.search(vectors, k=1)]
    assert found == list(queries)


# -- the pipeline ----------------------------------------------------------------------


def test_reading_embedding_and_writing_overlap() -> None:
    def slow_batches() -> Iterator[int]:
        for i in range(20):
            time.sleep(0.03)
            yield i

    written: list[int] = []
    embedded_by: set[str] = set()

    def embed(batch: int) -> int:
        embedded_by.add(threading.current_thread().name)
        time.sleep(0.03)
        return batch

    def write(batch: int) -> None:
        time.sleep(0.03)
        written.append(batch)

    started = time.perf_counter()
    run_pipeline(slow_batches(), embed, write)
    elapsed = time.perf_counter() - started
    assert written == list(range(20))
    assert embedded_by == {threading.current_thread().name}
    assert elapsed < 1.2  # 1.8 s one stage after another; ~0.66 s overlapped


def test_a_failing_embedder_still_writes_the_batches_embedded_before_it() -> None:
    written: list[int] = []

    def embed(batch: int) -> int:
        if batch == 5:
            raise RuntimeError("model broke")
        return batch

    with pytest.raises(RuntimeError, match="model broke"):
        run_pipeline(iter(range(100)), embed, written.append)
    assert written == list(range(5))


def test_a_failing_writer_stops_the_pipeline() -> None:
    def write(batch: int) -> None:
        if batch == 3:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_pipeline(iter(range(10**9)), lambda b: b, write)


def test_progress_lines_show_count_rate_and_eta() -> None:
    plain = io.StringIO()
    progress = ProgressLine(plain, interactive=False, log_every_s=0)
    progress.start(done_before=500, units_done=50, units_total=200)
    progress.update(indexed=90, rejected=10, units_done=100)
    progress.finish()
    first, line = plain.getvalue().splitlines()
    assert first == "resuming after 500 records done by an earlier run"
    assert line.startswith("90 indexed, 10 rejected, 50%, ")
    assert "records/s, ETA 0:00:0" in line
    terminal = io.StringIO()
    progress = ProgressLine(terminal, interactive=True, redraw_s=0)
    progress.start(done_before=0, units_done=0, units_total=None)
    progress.update(indexed=3, rejected=0, units_done=3)
    progress.finish()
    assert terminal.getvalue().startswith("\r\x1b[K3 indexed, 0 rejected, ")
    assert terminal.getvalue().endswith("\n")


# -- the command line --------------------------------------------------------------------


def cli(*args: str | Path) -> subprocess.Popen[str]:
    # One torch thread: on two cores shared with other work, a second OpenMP thread
    # spin-waiting for a busy core makes the model several times slower.
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "index", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def checkpoint_of(data: Path) -> dict[str, Any] | None:
    for path in (data / "collections" / "docs" / "jobs").glob("*.json"):
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return None  # caught between its write and its rename
    return None


def test_a_killed_job_resumes_where_it_stopped(tmp_path: Path, minilm: Embedder) -> None:
    records: list[Any] = [
        {"id": f"doc-{i}", "title": f"record {i} of a long list"} for i in range(3000)
    ]
    records[100] = "{not json"
    records[2500] = {"id": "doc-2500"}
    records[2900] = {"id": "doc-5", "title": "a later record replaces an earlier one"}
    source = write_jsonl(tmp_path / "docs.jsonl", records)
    valid = {r["id"] for r in records if isinstance(r, dict) and "title" in r}
    data = tmp_path / "data"
    args = (source, "--collection", "docs", "--data", data, "--text-field", "title")

    first = cli(*args, "--batch-size", "50")
    deadline = time.monotonic() + 120
    while (checkpoint_of(data) or {}).get("position", 0) < 300:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    killed_at = checkpoint_of(data)
    assert killed_at is not None
    assert not killed_at["finished"]

    second = cli(*args, "--batch-size", "200")
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err
    assert "resumed after" in out
    indexed = int(out.split("indexed ", 1)[1].split(" records", 1)[0].replace(",", ""))
    assert indexed < len(valid)

    with Engine(data, background=False) as engine:
        ids = all_ids(engine)
        assert len(ids) == len(set(ids)) == len(valid)
        assert set(ids) == valid
        collection = engine.get_collection("docs")
        replaced = collection.get(["doc-5"])[0].vector
        later = minilm.embed_texts(["a later record replaces an earlier one"])[0]
        np.testing.assert_allclose(replaced, later, atol=1e-4)  # type: ignore[arg-type]
        seq = collection.store.seq
    rejects_file = next((data / "collections" / "docs" / "jobs").glob("*.rejects.jsonl"))
    rejects = [json.loads(line) for line in rejects_file.read_text().splitlines()]
    assert [(r["position"], r["id"]) for r in rejects] == [(100, None), (2500, "doc-2500")]

    third = cli(*args)
    out, err = third.communicate(timeout=60)
    assert third.returncode == 0, err
    assert out.startswith("nothing to do")
    with Engine(data, background=False) as engine:
        assert engine.get_collection("docs").store.seq == seq


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl", "--text-field", "title"], "does not exist"),
        (["docs.txt", "--text-field", "title"], "cannot tell the format"),
        (["docs.jsonl", "--text-field", "titel"], "--text-field 'titel' is not among"),
        (["docs.jsonl", "--text-field", "title", "--id-field", "key"], "--id-field 'key'"),
        (["docs.jsonl", "--text-field", "title", "--embedder", "gpt-9"], "no embedder named"),
        (["docs.jsonl", "--text-field", "title", "--embedder", "/tmp/model"], "no embedder"),
        (["docs.jsonl"], "give --text-field"),
        (["docs.jsonl", "--text-field", "t", "--image-field", "p"], "not both"),
        (["docs.jsonl", "--text-field", "title", "--batch-size", "0"], "--batch-size"),
        (["docs.jsonl", "--text-field", "title", "--label-from-folder"], "image folders only"),
        (["docs.csv", "--text-field", "title", "--payload-fields", "x"], "--payload-fields 'x'"),
        (["photos", "--text-field", "title"], "does not apply to an image folder"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    write_jsonl(tmp_path / "docs.jsonl", rows(3))
    (tmp_path / "docs.txt").write_text("id,title\n1,x\n")
    (tmp_path / "docs.csv").write_text("id,title\n1,x\n")
    (tmp_path / "photos").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["index", *args, "--collection", "docs", "--data", "data"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vecserve index: error: ")
    assert message in err
    assert not (tmp_path / "data").exists()


def test_unreadable_input_fails_with_exit_1_and_no_traceback(tmp_path: Path) -> None:
    garbage = tmp_path / "docs.jsonl"
    garbage.write_bytes(bytes(range(256)) * 50)
    process = cli(garbage, "--collection", "docs", "--data", tmp_path / "d", "--text-field", "t")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.startswith("vecserve index: error: cannot read")
    assert "none of its first" in err
    assert "Traceback" not in err


# -- jobs that send their points to a service (see tests/integration/test_index_url.py) -----


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "d", "--url", "http://127.0.0.1:1"], "not allowed with argument"),
        (["--api-key", "k" * 20], "--api-key goes with --url"),
        (["--url", "127.0.0.1:8000"], "is not a service URL like http://127.0.0.1:8000"),
    ],
)
def test_a_job_goes_to_a_data_folder_or_to_a_url_with_its_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    write_jsonl(tmp_path / "docs.jsonl", rows(3))
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["index", "docs.jsonl", "--collection", "docs", "--text-field", "title", *args])
    except SystemExit as exit:  # argparse's own errors
        code = int(exit.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["docs.jsonl"]


def test_retries_wait_longer_each_time_and_as_long_as_the_service_asks() -> None:
    retries = Retries(max_retries=3, backoff=1.0, max_backoff=3.0, max_retry_after=10.0)
    first, second, third = (retries.delay(n) or -1.0 for n in (1, 2, 3))
    assert 0.5 <= first <= 1.0 <= second <= 2.0
    assert 1.5 <= third <= 3.0
    assert retries.delay(4) is None
    assert retries.delay(1, retry_after=7.0) == 7.0
    assert retries.delay(1, retry_after=600.0) == 10.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0.5", 0.5), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None)],
)
def test_retry_after_is_read_as_seconds_or_as_a_date(header: str, seconds: float | None) -> None:
    response = httpx.Response(429, headers={"retry-after": header})
    assert retry_after(response) == seconds
    assert retry_after(httpx.Response(429)) is None


class FakeService:
    """A stand-in for the service's upsert route, for the client side of ``--url``: at
    most ``max_points`` points a request, no payload over 100 bytes, and a script of
    failures to answer first. (The real service is driven in test_index_url.py.)"""

    def __init__(self, max_points: int, script: list[httpx.Response] | None = None) -> None:
        self.max_points = max_points
        self.script = list(script or [])
        self.sizes: list[int] = []  # points in each request that reached the route
        self.stored: dict[Any, Any] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.script:
            return self.script.pop(0)
        points = json.loads(request.content)["points"]
        self.sizes.append(len(points))
        too_large = {"error": "RequestTooLarge", "message": "too large", "request_id": "r"}
        if len(points) > self.max_points:
            return httpx.Response(413, json=too_large)
        if any(len(json.dumps(p["payload"])) > 100 for p in points):
            return httpx.Response(413, json=too_large)
        self.stored.update((p["id"], p["payload"]) for p in points)
        return httpx.Response(200, json={"upserted": len(points)})


def remote(service: FakeService, tmp_path: Path, max_retries: int = 3) -> Any:
    from indexer.jobs.remote import RemoteTarget

    retries = Retries(max_retries=max_retries, backoff=0.0, max_retry_after=0.0)
    return RemoteTarget(
        "http://127.0.0.1:9",
        "docs",
        "minilm",
        tmp_path,
        retries=retries,
        transport=httpx.MockTransport(service),
    )


def test_a_remote_upsert_is_split_to_the_services_limit_and_keeps_that_size(
    tmp_path: Path,
) -> None:
    service = FakeService(max_points=3)
    target = remote(service, tmp_path)
    vectors = np.ones((8, 4), dtype=np.float32)
    payloads: list[dict[str, Any]] = [{"n": i} for i in range(8)]
    payloads[5] = {"blob": "x" * 200}  # over the payload limit even alone
    assert target.upsert(list(range(8)), vectors, payloads) == [
        (5, "refused by the service: too large")
    ]
    assert sorted(service.stored) == [0, 1, 2, 3, 4, 6, 7]
    assert service.sizes[:3] == [8, 4, 2]  # halved until a request went through
    service.sizes.clear()
    target.upsert(list(range(10, 14)), vectors[:4], [{}] * 4)
    assert service.sizes == [2, 2]  # the next batch keeps to the size that went through


def test_a_remote_upsert_retries_what_may_pass_and_fails_on_the_rest(tmp_path: Path) -> None:
    vectors = np.ones((2, 4), dtype=np.float32)
    busy = httpx.Response(503, json={"error": "Unavailable", "message": "busy"})
    limited = httpx.Response(429, headers={"retry-after": "0"}, json={"error": "RateLimited"})
    service = FakeService(max_points=10, script=[busy, limited, busy])
    assert remote(service, tmp_path).upsert([1, 2], vectors, [{}, {}]) == []
    assert sorted(service.stored) == [1, 2]

    service = FakeService(max_points=10, script=[busy] * 4)
    with pytest.raises(JobFailed, match=r"Unavailable \(503\): busy"):
        remote(service, tmp_path).upsert([1, 2], vectors, [{}, {}])  # 1 try + 3 retries

    no_model = httpx.Response(503, json={"error": "EmbedderUnavailable", "message": "gone"})
    service = FakeService(max_points=10, script=[no_model, busy])
    with pytest.raises(JobFailed, match="EmbedderUnavailable"):
        remote(service, tmp_path).upsert([1], vectors[:1], [{}])  # not retried
    assert service.script == [busy]

    denied = httpx.Response(401, json={"error": "Unauthorized", "message": "no key"})
    with pytest.raises(JobFailed, match="--api-key"):
        remote(FakeService(10, [denied]), tmp_path).upsert([1], vectors[:1], [{}])

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(JobFailed, match=r"cannot reach .* gave up after 3 tries"):
        remote(unreachable, tmp_path, max_retries=2).upsert([1], vectors[:1], [{}])  # type: ignore[arg-type]


# -- streaming: memory does not grow with the input ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_reading_streams_so_memory_does_not_grow_with_the_input(tmp_path: Path, fmt: str) -> None:
    """The reading half of a job (reader, batching, the pipeline's queues) in a process
    of its own, over inputs of 40,000 and 400,000 records: about the same peak memory.
    ``python -m bench.streaming`` measures it up to 10 million records."""
    from bench.streaming import read_through, write_input

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
    from bench.streaming import write_input

    path = tmp_path / "rows.parquet"
    write_input(path, "parquet", 500_000, row_group=5_000)
    source = open_source(path, "parquet")
    peak = count = 0
    for count, _ in enumerate(source.read(Start(), ("id", "text", "n")), start=1):
        if count % 2_500 == 0:
            peak = max(peak, pa.total_allocated_bytes())
    assert count == 500_000
    assert peak < 3 * 2**20, peak  # a row group of 5,000 records is ~0.6 MiB
