"""Texts and images through the SDK, embedded by the server's shipped models.

Loading the models takes seconds, so these run against the uvicorn server only, with
both clients.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from anyio.from_thread import BlockingPortal

from vecserve_client import (
    Client,
    InvalidEmbedderInput,
    InvalidInput,
    PointNotFound,
    ThumbnailNotFound,
    UnknownEmbedder,
)

from .conftest import connect

pytestmark = pytest.mark.slow

TEXTS = [
    "a red running shoe",
    "a blue denim jacket",
    "fresh basil and tomatoes",
    "a leather hiking boot",
]


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, portal: BlockingPortal) -> Iterator[Client]:
    yield from connect(request.param, "uvicorn", request, portal, timeout=120)


def test_texts_are_embedded_for_upsert_search_and_recommend(client: Client, name: str) -> None:
    info = client.create_collection(name, embedder="minilm", store_source=True)
    assert (info.dim, info.embedder, info.store_source) == (384, "minilm", True)
    client.upsert(name, list(range(len(TEXTS))), texts=TEXTS, batch_size=2)
    (point,) = client.get(name, [2])
    assert point.payload["_source"] == {"text": TEXTS[2]}

    hits = client.search(name, text="trainers for jogging", k=2)
    assert hits[0].id == 0
    batch = client.search_batch(name, texts=["winter coat", "salad"], k=1)
    assert [hits[0].id for hits in batch] == [1, 2]
    liked = client.recommend(name, [{"text": "boots for walking"}], negative=[2], k=1)
    assert liked[0].id == 3


def test_an_embedder_outside_the_allowlist_raises(client: Client, name: str) -> None:
    with pytest.raises(UnknownEmbedder):
        client.create_collection(name, embedder="not-a-model")


def images() -> list[bytes]:
    """Three PNGs: two reddish, one blue."""
    from PIL import Image

    out = []
    for colour in [(220, 30, 30), (200, 40, 50), (20, 40, 220)]:
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), colour).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def test_images_go_as_bytes_paths_or_pil_images(client: Client, name: str, tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    pngs = images()
    path = tmp_path / "blue.png"
    path.write_bytes(pngs[2])
    client.create_collection(name, embedder="efficientnet-lite0")
    client.upsert(name, ["red", "red2", "blue"], images=[pngs[0], pngs[1], path])
    query = pil.open(io.BytesIO(pngs[1]))
    hits = client.search(name, image=query, k=3, with_vectors=True)
    assert hits[0].id == "red2"
    assert hits[0].vector is not None
    assert hits[0].vector.shape == (1280,)
    assert np.isfinite(hits[0].vector).all()
    (by_path,) = client.search_batch(name, images=[str(path)], k=1)
    assert by_path[0].id == "blue"
    with pytest.raises(InvalidEmbedderInput):
        client.search(name, image=b"not an image")


def test_texts_need_a_collection_with_an_embedder(client: Client, name: str) -> None:
    client.create_collection(name, 4)
    with pytest.raises(InvalidEmbedderInput):
        client.search(name, text="anything")


def test_an_image_collection_asked_for_thumbnails_serves_a_jpeg_of_each_image(
    client: Client, name: str
) -> None:
    pil = pytest.importorskip("PIL.Image")
    info = client.create_collection(name, embedder="efficientnet-lite0", thumbnails=True)
    assert info.thumbnails
    pngs = images()
    client.upsert(name, ["red", 7], images=pngs[:2])
    jpeg = client.get_thumbnail(name, "red")
    thumb = pil.open(io.BytesIO(jpeg))
    assert (thumb.format, thumb.size) == ("JPEG", (64, 64))
    assert thumb.getpixel((32, 32))[0] > 180  # red stays red
    assert client.get_thumbnail(name, 7)[:2] == b"\xff\xd8"
    with pytest.raises(PointNotFound):
        client.get_thumbnail(name, "7")  # the string "7" is another point
    client.upsert(name, ["red"], vectors=[client.get(name, [7], with_vectors=True)[0].vector])
    with pytest.raises(ThumbnailNotFound):
        client.get_thumbnail(name, "red")


def test_thumbnails_are_for_image_collections(client: Client, name: str) -> None:
    with pytest.raises(InvalidInput):
        client.create_collection(name, 4, thumbnails=True)
