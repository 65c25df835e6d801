"""Running a job (indexer/jobs/job.py): each input format becomes points with the
embedded field and the payload, and an input that can make no points fails clearly."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("skimage")

from indexer import Engine, InvalidInput
from indexer.embedders import Embedder, EmbedderRegistry, default_embedder_configs
from indexer.errors import JobFailed
from tests.support.corpora import photo
from tests.unit.jobs.running import all_ids, cli, job, read_rejects, rows, run, write_jsonl

pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")

SENTENCES = {
    "cat": "The cat sleeps on the warm windowsill all afternoon.",
    "rain": "Heavy rain flooded the streets of the old town last night.",
    "stocks": "Stock markets fell sharply after the central bank raised rates.",
    "guitar": "She practises the guitar every evening after dinner.",
    "volcano": "The volcano erupted, covering nearby villages in ash.",
}


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


def test_image_folder_is_indexed_with_labels_and_a_truncated_image_is_rejected(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    folder = tmp_path / "photos"
    (folder / "cats").mkdir(parents=True)
    (folder / "drinks").mkdir()
    photo("chelsea").save(folder / "cats" / "chelsea.png")
    photo("chelsea").rotate(90).save(folder / "cats" / "chelsea-turned.jpg", quality=90)
    photo("coffee").save(folder / "drinks" / "coffee.jpg", quality=90)
    photo("astronaut").save(folder / "astronaut.png")
    jpeg = io.BytesIO()
    photo("coffee").save(jpeg, format="JPEG", quality=90)
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


def test_unreadable_input_fails_with_exit_1_and_no_traceback(tmp_path: Path) -> None:
    garbage = tmp_path / "docs.jsonl"
    garbage.write_bytes(bytes(range(256)) * 50)
    process = cli(garbage, "--collection", "docs", "--data", tmp_path / "d", "--text-field", "t")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.startswith("vecserve index: error: cannot read")
    assert "none of its first" in err
    assert "Traceback" not in err
