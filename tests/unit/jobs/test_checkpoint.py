"""Checkpoints (indexer/jobs/checkpoint.py): a finished job run again changes nothing
until its input changes, and a stopped or killed job resumes where it stopped."""

from __future__ import annotations

import codecs
import json
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("skimage")

from indexer import Engine
from indexer.embedders import Embedder, EmbedderRegistry
from tests.support.corpora import photo
from tests.unit.jobs.running import all_ids, cli, job, rows, run, write_jsonl


def test_a_finished_image_folder_job_indexes_images_added_since(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    photo("chelsea").save(folder / "chelsea.png")
    config = job(folder, engine.path)
    assert run(config, engine, registry).indexed == 1
    assert run(config, engine, registry).already_done
    photo("coffee").save(folder / "coffee.png")
    again = run(config, engine, registry)
    assert not again.already_done
    assert sorted(all_ids(engine)) == ["chelsea.png", "coffee.png"]


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
