"""Thumbnails: small JPEGs made from image points, kept in the store of record with the
point they belong to (replaced, deleted and backed up with it)."""

from __future__ import annotations

import io
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from indexer import Engine
from indexer.errors import InvalidEmbedderInput, InvalidInput, PointNotFound, ThumbnailNotFound
from indexer.store import SqliteStore
from indexer.thumbnails import MAX_SIDE, make_thumbnail


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_thumbnail_is_a_small_jpeg_of_the_same_shape() -> None:
    photo = skimage.data.chelsea()  # 451 x 300
    thumb = make_thumbnail(png(photo))
    image = Image.open(io.BytesIO(thumb))
    assert image.format == "JPEG"
    assert image.size == (MAX_SIDE, round(MAX_SIDE * 300 / 451))
    assert len(thumb) < 16_000
    # The same picture: its colours, at thumbnail scale.
    small = np.asarray(Image.fromarray(photo).resize(image.size), dtype=np.float32)
    assert np.abs(np.asarray(image, dtype=np.float32) - small).mean() < 12


def test_a_small_image_is_not_enlarged() -> None:
    thumb = make_thumbnail(png(np.zeros((20, 30, 3), np.uint8)))
    assert Image.open(io.BytesIO(thumb)).size == (30, 20)


def test_bytes_that_are_no_image_are_refused() -> None:
    with pytest.raises(InvalidEmbedderInput):
        make_thumbnail(b"not an image")


def test_the_store_keeps_a_thumbnail_with_its_point_and_drops_it_with_it(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    vectors = np.ones((2, 4), np.float32)
    with store.transaction() as txn:
        txn.upsert(["a", "b"], vectors, ["{}", "{}"], [b"thumb-a", b"thumb-b"])
        txn.commit()
    assert store.thumbnail("a") == b"thumb-a"
    assert store.thumbnail("missing") is None

    with store.transaction() as txn:  # replaced without one: the old one goes
        txn.upsert(["a"], vectors[:1], ["{}"])
        txn.commit()
    assert store.thumbnail("a") is None
    with store.transaction() as txn:
        txn.delete_keys(["b"])
        txn.commit()
    assert store.thumbnail("b") is None
    store.close()
    with closing(sqlite3.connect(tmp_path / "store.db")) as conn:
        assert conn.execute("SELECT count(*) FROM thumbnails").fetchone() == (0,)


def test_a_backup_of_the_store_holds_its_thumbnails(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    with store.transaction() as txn:
        txn.upsert(["a"], np.ones((1, 4), np.float32), ["{}"], [b"thumb-a"])
        txn.commit()
    store.backup_to(tmp_path / "copy.db")
    store.close()
    assert SqliteStore(tmp_path / "copy.db").thumbnail("a") == b"thumb-a"


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    return {name: png(getattr(skimage.data, name)()) for name in ("chelsea", "coffee", "rocket")}


def test_an_image_collection_keeps_a_thumbnail_of_each_point_when_asked(
    engine: Engine, photos: dict[str, bytes]
) -> None:
    kept = engine.create_collection("kept", embedder="efficientnet-lite0", thumbnails=True)
    kept.upsert(list(photos), images=list(photos.values()))
    for name in photos:
        image = Image.open(io.BytesIO(kept.thumbnail(name)))
        assert image.format == "JPEG"
        assert max(image.size) == MAX_SIDE
    kept.upsert(["chelsea"], kept.get(["coffee"])[0].vector)  # now a vector: no picture
    with pytest.raises(ThumbnailNotFound):
        kept.thumbnail("chelsea")
    kept.delete(["rocket"])
    with pytest.raises(PointNotFound):
        kept.thumbnail("rocket")
    assert kept.config.thumbnails

    plain = engine.create_collection("plain", embedder="efficientnet-lite0")
    plain.upsert(["chelsea"], images=[photos["chelsea"]])
    with pytest.raises(ThumbnailNotFound):
        plain.thumbnail("chelsea")


def test_thumbnails_need_an_image_embedder(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="image embedder"):
        engine.create_collection("vectors", 4, thumbnails=True)
    with pytest.raises(InvalidInput, match="image embedder"):
        engine.create_collection("texts", embedder="minilm", thumbnails=True)


def test_a_snapshot_restores_the_thumbnails(engine: Engine, photos: dict[str, bytes]) -> None:
    kept = engine.create_collection("kept", embedder="efficientnet-lite0", thumbnails=True)
    kept.upsert(["coffee"], images=[photos["coffee"]])
    before = kept.thumbnail("coffee")
    snapshot = engine.snapshot("kept")
    engine.drop_collection("kept")
    restored = engine.restore_snapshot("kept", snapshot.path, sha256=snapshot.sha256)
    assert restored.thumbnail("coffee") == before
