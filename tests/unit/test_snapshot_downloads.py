"""A snapshot download that another request's delete overtakes is still the whole file,
or a 404: never a 500, never a cut answer."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indexer import Engine
from service.app import create_app
from service.settings import Settings
from tests.unit.test_snapshots import delete_when_checksum_read


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_a_download_overtaken_by_a_delete_is_the_whole_file_or_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: bool
) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data", device="cpu"))
    with TestClient(app, raise_server_exceptions=False) as client:
        engine: Engine = app.state.engine
        items = engine.create_collection("items", dim=8, metric="l2")
        items.upsert(list(range(2_000)), np.ones((2_000, 8), dtype=np.float32))
        doomed = engine.snapshot("items")
        expected = doomed.path.read_bytes()
        fired = delete_when_checksum_read(monkeypatch, engine, doomed, after=after)
        download = client.get(f"/collections/items/snapshots/{doomed.name}")
        assert fired
        if after:  # the file was open before the delete
            assert download.status_code == 200
            assert download.content == expected
            assert hashlib.sha256(download.content).hexdigest() == doomed.sha256
            assert download.headers["content-length"] == str(doomed.size)
            assert download.headers["x-checksum-sha256"] == doomed.sha256
            assert download.headers["content-disposition"] == (
                f'attachment; filename="{doomed.name}.tar"'
            )
        else:
            assert (download.status_code, download.json()["error"]) == (404, "SnapshotNotFound")
        assert not doomed.path.exists()
