"""Micro-batching in the real server: concurrent requests share batches, each client gets
the answer it would get alone, and an error stays with the request that caused it."""

from __future__ import annotations

import asyncio
import base64
import io
import re
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.corpora import SHORT_TEXTS
from tests.support.server import NewServer, Server

DIM = 16
rng = np.random.default_rng(23)


@pytest.fixture(scope="module")
def server(new_server: NewServer) -> Iterator[Server]:
    # A wide window, so that requests sent together on a loaded machine still meet.
    with new_server({"VECSERVE_BATCH_WINDOW_MS": "50"}) as s:
        yield s


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def batch_metrics(http: httpx.Client) -> tuple[float, float]:
    """(batches run, queries in them) so far, from the Prometheus histogram."""
    text = http.get("/metrics").text
    count = re.search(r"^vecserve_search_batch_size_count (\S+)$", text, re.M)
    total = re.search(r"^vecserve_search_batch_size_sum (\S+)$", text, re.M)
    assert count is not None
    assert total is not None
    return float(count.group(1)), float(total.group(1))


def tiny_png() -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


async def send_together(url: str, path: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        return await asyncio.gather(*(client.post(path, json=body) for body in bodies))


def test_concurrent_searches_are_batched_and_answered_separately(
    server: Server, http: httpx.Client
) -> None:
    http.put("/collections/items", json={"dim": DIM, "metric": "l2", "index": "flat"})
    vectors = rng.standard_normal((2000, DIM)).astype(np.float32)
    points = [
        {"id": i, "vector": v.tolist(), "payload": {"group": i % 4}} for i, v in enumerate(vectors)
    ]
    assert http.put("/collections/items/points", json={"points": points}).status_code == 200

    bodies: list[dict[str, Any]] = [
        {
            "vector": rng.standard_normal(DIM).tolist(),
            "k": [1, 3, 10][i % 3],
            "filter": [None, {"group": 2}][i % 2],
            "with_payload": i % 4 == 0,
        }
        for i in range(60)
    ]
    bodies[17] = {"vector": [1.0] * (DIM - 1)}
    bodies[31] = {"id": 5, "k": 4}
    alone = [http.post("/collections/items/search", json=body) for body in bodies]

    batches_before, queries_before = batch_metrics(http)
    together = asyncio.run(send_together(server.url, "/collections/items/search", bodies))
    batches_after, queries_after = batch_metrics(http)

    assert queries_after - queries_before == len(bodies)
    assert batches_after - batches_before < len(bodies) / 2  # most requests shared a batch
    assert (together[17].status_code, together[17].json()["error"]) == (422, "DimensionMismatch")
    for i, (single, shared) in enumerate(zip(alone, together, strict=True)):
        assert shared.status_code == single.status_code, i
        assert without_request_id(shared) == without_request_id(single), i


def without_request_id(response: httpx.Response) -> Any:
    body = response.json()
    body.pop("request_id", None)
    return body


def test_concurrent_text_searches_share_the_embedding(server: Server, http: httpx.Client) -> None:
    http.put("/collections/docs", json={"embedder": "minilm", "index": "flat"})
    points = [{"id": i, "text": t} for i, t in enumerate(SHORT_TEXTS)]
    assert http.put("/collections/docs/points", json={"points": points}).status_code == 200
    queries = ["kitten", "shares", "soup", "soccer", "weather", "smartphone", "dog", "cooking"]
    bodies: list[dict[str, Any]] = [{"text": q, "k": 2} for q in queries * 3]
    bodies.append({"image": tiny_png()})  # a text model embeds no images: fails alone
    alone = [http.post("/collections/docs/search", json=body) for body in bodies]

    batches_before, _ = batch_metrics(http)
    together = asyncio.run(send_together(server.url, "/collections/docs/search", bodies))
    batches_after, _ = batch_metrics(http)

    assert batches_after - batches_before < len(bodies) / 2
    assert together[-1].json()["error"] == "InvalidEmbedderInput"
    for i, (single, shared) in enumerate(zip(alone, together, strict=True)):
        assert shared.status_code == single.status_code, i
        if shared.status_code == 200:
            got, expected = shared.json()["hits"], single.json()["hits"]
            assert [h["id"] for h in got] == [h["id"] for h in expected], i
            np.testing.assert_allclose(
                [h["score"] for h in got], [h["score"] for h in expected], atol=1e-5
            )
