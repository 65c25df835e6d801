"""Snapshots through the SDK: create, list, download, restore, delete."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from anyio.from_thread import BlockingPortal

from vecserve_client import (
    AsyncClient,
    ChecksumMismatch,
    Client,
    CollectionNotEmpty,
    InvalidSnapshot,
    Snapshot,
    SnapshotNotFound,
)

from .conftest import BlockingAsyncClient

rng = np.random.default_rng(31)


def test_snapshot_download_restore_and_delete(client: Client, name: str, tmp_path: Path) -> None:
    data = rng.standard_normal((25, 4)).astype(np.float32)
    client.create_collection(name, 4, metric="l2")
    client.upsert(name, list(range(25)), data, payloads=[{"i": i} for i in range(25)])

    snapshot = client.create_snapshot(name)
    assert isinstance(snapshot, Snapshot)
    assert snapshot.points == 25
    assert snapshot.name in [s.name for s in client.list_snapshots(name)]

    path = client.download_snapshot(name, snapshot.name, tmp_path / "copy.tar")
    assert path == tmp_path / "copy.tar"
    assert path.stat().st_size == snapshot.size
    assert hashlib.sha256(path.read_bytes()).hexdigest() == snapshot.sha256
    assert list(tmp_path.iterdir()) == [path]  # no partial file left behind

    restored = f"{name}r"
    try:
        info = client.restore_snapshot(restored, path)
        assert (info.name, info.dim, info.count) == (restored, 4, 25)
        (point,) = client.get(restored, [7], with_vectors=True)
        assert point.payload == {"i": 7}
        assert point.vector is not None
        np.testing.assert_array_equal(point.vector, data[7])
        with pytest.raises(CollectionNotEmpty):
            client.restore_snapshot(restored, path)
    finally:
        client.delete_collection(restored)

    client.delete_snapshot(name, snapshot.name)
    assert snapshot.name not in [s.name for s in client.list_snapshots(name)]
    with pytest.raises(SnapshotNotFound):
        client.delete_snapshot(name, snapshot.name)
    with pytest.raises(SnapshotNotFound):
        client.download_snapshot(name, snapshot.name, tmp_path / "gone.tar")
    assert not (tmp_path / "gone.tar").exists()


def test_restoring_a_damaged_file_raises_invalid_snapshot(
    client: Client, name: str, tmp_path: Path
) -> None:
    bogus = tmp_path / "bogus.tar"
    bogus.write_bytes(b"not a tar file" * 100)
    with pytest.raises(InvalidSnapshot):
        client.restore_snapshot(name, bogus)
    assert name not in client.list_collections()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_download_that_differs_from_its_checksum_raises_and_leaves_no_file(
    flavour: str, portal: BlockingPortal, tmp_path: Path
) -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        sha = hashlib.sha256(b"the real file").hexdigest()
        return httpx.Response(200, content=b"a corrupted file", headers={"x-checksum-sha256": sha})

    transport = httpx.MockTransport(serve)
    client = (
        Client("http://test", transport=transport)
        if flavour == "sync"
        else BlockingAsyncClient(AsyncClient("http://test", transport=transport), portal)
    )
    with pytest.raises(ChecksumMismatch) as caught:
        client.download_snapshot("items", "items-20260101T000000Z-00000000", tmp_path / "s.tar")
    assert caught.value.status_code == 200
    assert list(tmp_path.iterdir()) == []
