"""The service on a GPU machine answers searches end to end from a GPU index."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.server import NewServer

pytestmark = pytest.mark.gpu


def test_service_serves_searches_from_the_gpu(tmp_path: Path, new_server: NewServer) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2_000, 32)).astype(np.float32)
    server = new_server({"VECSERVE_DEVICE": "auto"}, data_dir=tmp_path / "data")
    with server, httpx.Client(base_url=server.url, timeout=60) as http:
        created = http.put("/collections/items", json={"dim": 32, "index": "flat"})
        assert created.status_code in (200, 201), created.text
        points = [
            {"id": i, "vector": v.tolist(), "payload": {"i": i}} for i, v in enumerate(vectors)
        ]
        assert http.put("/collections/items/points", json={"points": points}).is_success
        info = http.get("/collections/items").json()
        assert info["serving"]["device"] == "gpu"
        assert info["count"] == 2_000
        found = http.post(
            "/collections/items/search",
            json={"vector": vectors[7].tolist(), "k": 3, "with_payload": True},
        ).json()
        assert found["hits"][0]["id"] == 7
        assert found["hits"][0]["payload"] == {"i": 7}
        batch = http.post(
            "/collections/items/search/batch",
            json={"searches": [{"vector": vectors[i].tolist(), "k": 1} for i in range(64)]},
        ).json()
        assert [r["hits"][0]["id"] for r in batch["results"]] == list(range(64))
        metrics = http.get("/metrics").text
        assert re.search(
            r'vecserve_collection_gpu_memory_bytes\{collection="items"\} [1-9]', metrics
        )
