"""From records to points (indexer/jobs/records.py): ids, image files named by a field,
repeated ids, and the records rejected with their position, id and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("skimage")

from indexer import Engine
from indexer.embedders import EmbedderRegistry
from tests.support.corpora import photo
from tests.unit.jobs.running import all_ids, job, read_rejects, run, write_jsonl


def test_an_image_field_names_files_next_to_a_source_of_a_named_format(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    (tmp_path / "img").mkdir()
    photo("coffee").save(tmp_path / "img" / "coffee.png")
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
