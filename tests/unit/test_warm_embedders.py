"""The embedders the collections use are loaded before the server says it is ready, so
the first search does not wait for a model; VECSERVE_WARM_EMBEDDERS=false leaves them to
load on first use."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer import Engine
from service.app import create_app
from service.settings import Settings


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text collection and a vectors-only one, made before the server starts."""
    folder = tmp_path_factory.mktemp("warm") / "data"
    with Engine(folder, background=False, device="cpu") as engine:
        engine.create_collection("docs", embedder="minilm", index="flat")
        engine.create_collection("vectors", 4, index="flat")
    return folder


def test_the_embedders_in_use_are_loaded_before_ready(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.warmup")
    with TestClient(create_app(Settings(data_dir=data_dir, device="cpu"))) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        assert client.app.state.engine.embedders.loaded() == ["minilm"]  # type: ignore[attr-defined]
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("loading embedders minilm before ready") for m in messages)
    assert any(m.startswith("embedder minilm loaded in") for m in messages)


def test_warming_can_be_turned_off(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, device="cpu", warm_embedders=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        assert client.app.state.engine.embedders.loaded() == []  # type: ignore[attr-defined]
