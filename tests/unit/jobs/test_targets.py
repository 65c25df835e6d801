"""Where a job's points go (indexer/jobs/targets.py): a collection whose vectors another
embedder made is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from indexer import CollectionExists, Engine
from indexer.embedders import EmbedderRegistry
from tests.unit.jobs.running import job, rows, run, write_jsonl


def test_a_collection_of_another_embedder_is_refused(
    tmp_path: Path, engine: Engine, registry: EmbedderRegistry
) -> None:
    engine.create_collection("docs", dim=384)
    source = write_jsonl(tmp_path / "docs.jsonl", rows(3))
    with pytest.raises(CollectionExists, match="vectors of no embedder"):
        run(job(source, engine.path, text_field="title"), engine, registry)
