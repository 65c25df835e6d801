"""What a job keeps in payloads (indexer/jobs/job.py): ``store_source`` keeps the embedded
text or the image's file hash and path, and a job run again with only its kept fields
changed rewrites the payloads without embedding anything."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("skimage")

from indexer import Engine, InvalidInput
from indexer.embedders import EmbedderRegistry, default_embedder_configs
from tests.support.corpora import photo
from tests.unit.jobs.running import job, read_rejects, rows, run, write_jsonl
from tests.unit.jobs.test_checkpoint import StopAfterFirstBatch


def test_store_source_keeps_each_embedded_text_under_source(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", rows(10))
    config = job(source, engine.path, text_field="title", payload_fields=("n",), store_source=True)
    run(config, engine, registry)
    point = engine.get_collection("docs").get([3])[0]
    assert point.payload == {"n": 3, "_source": {"text": "note 3: item number 3"}}


def test_a_rerun_with_other_kept_fields_rewrites_payloads_and_embeds_nothing(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", [*rows(300), {"id": 300}])
    first = run(job(source, engine.path, text_field="title", batch_size=64), engine, registry)
    assert (first.indexed, first.embedded, first.rejected) == (300, 300, 1)
    collection = engine.get_collection("docs")
    before = {p.id: p.vector for p in collection.get(list(range(300)))}

    # A registry of its own: whether it loaded the model says whether anything was embedded.
    fresh = EmbedderRegistry(default_embedder_configs())
    kept = job(
        source,
        engine.path,
        text_field="title",
        payload_fields=("n",),
        store_source=True,
        batch_size=64,
    )
    again = run(kept, engine, fresh)
    assert (again.indexed, again.embedded, again.rejected, again.replaced) == (300, 0, 1, 0)
    assert fresh.loaded() == []
    assert collection.count() == 300
    for point in collection.get(list(range(300))):
        assert isinstance(point.id, int)
        assert point.payload == {"n": point.id, "_source": {"text": rows(300)[point.id]["title"]}}
        np.testing.assert_array_equal(point.vector, before[point.id])  # type: ignore[arg-type]
    # The rewritten points are found as before.
    hits = collection.search(before[7], k=1)[0]
    assert (hits[0].id, hits[0].payload) == (
        7,
        {"n": 7, "_source": {"text": "note 7: item number 7"}},
    )

    assert run(kept, engine, fresh).already_done
    back = run(job(source, engine.path, text_field="title", batch_size=64), engine, fresh)
    assert (back.indexed, back.embedded) == (300, 0)
    assert collection.get([7])[0].payload == {}
    assert fresh.loaded() == []


def test_a_rerun_with_other_kept_fields_embeds_only_what_a_stopped_run_did_not(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", rows(20))
    config = job(source, engine.path, text_field="title", batch_size=8)
    with pytest.raises(RuntimeError, match="stopped"):
        run(config, engine, registry, progress=StopAfterFirstBatch())
    kept = job(source, engine.path, text_field="title", payload_fields=("n",), batch_size=8)
    summary = run(kept, engine, registry)
    assert (summary.resumed_from, summary.indexed, summary.embedded) == (0, 20, 12)
    assert engine.get_collection("docs").get([0, 19])[1].payload == {"n": 19}


def test_a_point_deleted_since_it_was_embedded_is_rejected_by_a_payload_rewrite(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", rows(10))
    run(job(source, engine.path, text_field="title"), engine, registry)
    engine.get_collection("docs").delete([4])
    summary = run(
        job(source, engine.path, text_field="title", payload_fields=("n",)), engine, registry
    )
    assert (summary.indexed, summary.embedded, summary.rejected) == (9, 0, 1)
    [reject] = read_rejects(summary)
    assert (reject["id"], reject["position"]) == (4, 4)
    assert "deleted since" in reject["reason"]


def test_store_source_keeps_an_images_file_hash_and_path_and_a_rerun_does_not_embed(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    folder = tmp_path / "photos"
    (folder / "cats").mkdir(parents=True)
    photo("chelsea").save(folder / "cats" / "chelsea.png")
    photo("coffee").save(folder / "coffee.png")
    first = run(job(folder, engine.path), engine, registry)
    assert (first.indexed, first.embedded) == (2, 2)

    fresh = EmbedderRegistry(default_embedder_configs())
    config = job(folder, engine.path, label_from_folder=True, store_source=True)
    again = run(config, engine, fresh)
    assert (again.indexed, again.embedded) == (2, 0)
    assert fresh.loaded() == []
    point = engine.get_collection("docs").get(["cats/chelsea.png"])[0]
    digest = hashlib.sha256((folder / "cats" / "chelsea.png").read_bytes()).hexdigest()
    assert point.payload == {
        "path": "cats/chelsea.png",
        "label": "cats",
        "_source": {"image_sha256": digest, "image_path": "cats/chelsea.png"},
    }


def test_store_source_with_a_payload_field_named_source_is_refused(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", [{"id": 1, "title": "a", "_source": "x"}])
    config = job(
        source, engine.path, text_field="title", payload_fields=("_source",), store_source=True
    )
    with pytest.raises(InvalidInput, match="--store-source"):
        run(config, engine, registry)


def test_a_record_rejected_when_embedded_stays_rejected_when_only_kept_fields_change(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    # The id's vector in the collection is another record's: a payload rewrite must not
    # give it the payload of a record whose own image could never be embedded.
    photo("chelsea").save(tmp_path / "cat.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    records = [
        {"id": "pet", "image": "cat.png", "caption": "a cat"},
        {"id": "pet", "image": "broken.png", "caption": "a broken file"},
    ]
    source = write_jsonl(tmp_path / "pets.jsonl", records)
    first = run(job(source, engine.path, image_field="image"), engine, registry)
    assert (first.indexed, first.rejected) == (1, 1)

    kept = job(source, engine.path, image_field="image", payload_fields=("caption",))
    again = run(kept, engine, EmbedderRegistry(default_embedder_configs()))
    assert (again.indexed, again.embedded, again.rejected) == (1, 0, 1)
    assert engine.get_collection("docs").get(["pet"])[0].payload == {"caption": "a cat"}
