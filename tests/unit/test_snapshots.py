"""Snapshots: one point in time while writes go on, restorable under any name, and a
hostile tar file is refused without writing anything anywhere."""

from __future__ import annotations

import hashlib
import io
import logging
import re
import sqlite3
import tarfile
import threading
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from indexer import (
    ChecksumMismatch,
    Collection,
    CollectionNotEmpty,
    CollectionNotFound,
    Engine,
    InvalidInput,
    InvalidName,
    InvalidSnapshot,
    SnapshotInfo,
    SnapshotNotFound,
)
from tests.support.vectors import NormalVectors

DIM = 8
vectors = NormalVectors(seed=11, dim=DIM)
State = dict[str, tuple[Any, list[float]]]


def state(collection: Collection) -> State:
    """Every point as the store has it: id key -> (payload, vector)."""
    points, cursor = collection.scroll(limit=10_000, with_vectors=True)
    assert cursor is None
    return {repr(p.id): (p.payload, p.vector.tolist()) for p in points if p.vector is not None}


@pytest.fixture
def items(engine: Engine) -> Collection:
    c = engine.create_collection("items", dim=DIM, metric="cosine")
    c.upsert(list(range(300)), vectors(300), [{"n": i, "even": i % 2 == 0} for i in range(300)])
    c.upsert([f"s{i}" for i in range(20)], vectors(20))
    return c


# -- consistency -------------------------------------------------------------------------------


def test_snapshot_holds_one_point_in_time_while_writes_go_on(engine: Engine) -> None:
    live = engine.create_collection("live", dim=4, metric="l2")
    batches = 400

    def batch(b: int) -> tuple[list[str], np.ndarray, list[dict[str, int]]]:
        # Each batch adds 10 points and rewrites 5 shared ones: a half-applied batch
        # would show as shared points from two batches, or some of a batch's points.
        ids = [f"b{b}-{j}" for j in range(10)] + [f"shared-{j}" for j in range(5)]
        vecs = (b * 100 + np.arange(15 * 4, dtype=np.float32)).reshape(15, 4)
        return ids, vecs, [{"batch": b, "j": j} for j in range(15)]

    def expected(seq: int) -> State:
        out: State = {}
        for b in range(seq):  # seq counts committed batches: this collection starts at 0
            ids, vecs, payloads = batch(b)
            for i, v, p in zip(ids, vecs, payloads, strict=True):
                out[repr(i)] = (p, v.tolist())
        return out

    assert live.store.seq == 0
    writer = threading.Thread(target=lambda: [live.upsert(*batch(b)) for b in range(batches)])
    writer.start()
    taken: list[SnapshotInfo] = []
    while writer.is_alive() and len(taken) < 5:
        taken.append(engine.snapshot("live"))
    writer.join()
    assert live.store.seq == batches  # the writer was never stopped
    assert any(0 < info.seq < batches for info in taken)  # taken mid-stream
    for i, info in enumerate(taken):
        restored = engine.restore_snapshot(f"at{i}", info.path, sha256=info.sha256)
        assert restored.store.seq == info.seq
        assert restored.count() == info.points
        assert state(restored) == expected(info.seq)


def test_restored_collection_answers_searches_like_the_original(
    engine: Engine, items: Collection
) -> None:
    info = engine.snapshot("items")
    assert (info.seq, info.points) == (2, 320)
    copy = engine.restore_snapshot("copy", info.path, sha256=info.sha256)
    assert copy.config == items.config.model_copy(update={"name": "copy"})
    assert state(copy) == state(items)
    queries = vectors(20)
    for kwargs in ({}, {"filter": {"even": True}}, {"params": {"exact": True}}):
        assert copy.search(queries, k=10, **kwargs) == items.search(queries, k=10, **kwargs)
    # The restored collection is a collection like any other: writes, reopening.
    copy.upsert(["new"], vectors(1))
    assert copy.count() == 321
    assert items.count() == 320


def test_snapshots_outlive_their_collection_and_restore_under_its_name(
    engine: Engine, items: Collection
) -> None:
    before = state(items)
    info = engine.snapshot("items")
    engine.drop_collection("items")
    assert engine.list_snapshots("items") == [info]
    restored = engine.restore_snapshot("items", info.path, sha256=info.sha256)
    assert state(restored) == before
    assert engine.list_collections() == ["items"]
    assert restored.uid != items.uid  # the same points, another collection


def test_restore_onto_a_collection_with_points_is_a_conflict(
    engine: Engine, items: Collection
) -> None:
    info = engine.snapshot("items")
    items.upsert(["later"], vectors(1))
    before = state(items)
    with pytest.raises(CollectionNotEmpty) as raised:
        engine.restore_snapshot("items", info.path, sha256=info.sha256)
    assert raised.value.status_code == 409
    assert state(engine.get_collection("items")) == before
    # An empty collection is replaced, whatever its configuration was.
    engine.create_collection("empty", dim=3, metric="l2")
    restored = engine.restore_snapshot("empty", info.path, sha256=info.sha256)
    assert (restored.dim, restored.count()) == (DIM, 320)


def test_snapshots_are_listed_fetched_and_deleted(engine: Engine, items: Collection) -> None:
    first = engine.snapshot("items")
    second = engine.snapshot("items")
    assert engine.list_snapshots("items") == [first, second]
    assert engine.get_snapshot("items", first.name) == first
    assert first.name.startswith("items-")
    assert hashlib.sha256(first.path.read_bytes()).hexdigest() == first.sha256
    sidecar = Path(f"{first.path}.sha256").read_text()
    assert sidecar == f"{first.sha256}  {first.name}.tar\n"  # `sha256sum -c` reads it
    with tarfile.open(first.path) as tar:
        assert tar.getnames() == ["manifest.json", "config.json", "store.sqlite3", "index.vsi"]
    engine.delete_snapshot("items", first.name)
    assert engine.list_snapshots("items") == [second]
    with pytest.raises(SnapshotNotFound):
        engine.get_snapshot("items", first.name)
    with pytest.raises(SnapshotNotFound):
        engine.delete_snapshot("items", first.name)
    for bad in ("../items", "x.tar", first.name + "/..", ""):
        with pytest.raises(InvalidName):
            engine.get_snapshot("items", bad)
    with pytest.raises(CollectionNotFound):
        engine.snapshot("nothing")
    # The snapshot area sits beside the collections and is never taken for one.
    assert engine.list_collections() == ["items"]
    engine.close()
    with Engine(engine.path, background=False) as reopened:
        reopened.open_all()
        assert reopened.list_collections() == ["items"]
        assert reopened.list_snapshots("items") == [second]


def test_a_trusted_snapshot_index_is_loaded_not_rebuilt(
    engine: Engine, items: Collection, caplog: pytest.LogCaptureFixture
) -> None:
    items.optimize()  # the saved index covers every write
    info = engine.snapshot("items")
    caplog.set_level(logging.INFO, logger="indexer.collection")
    engine.restore_snapshot("rebuilt", info.path, sha256=info.sha256)
    assert any("built" in r.getMessage() for r in caplog.records)
    caplog.clear()
    trusted = engine.restore_snapshot("trusted", info.path, sha256=info.sha256, trust_index=True)
    assert not any("built" in r.getMessage() for r in caplog.records)
    queries = vectors(5)
    assert trusted.search(queries, k=5) == items.search(queries, k=5)


# -- requests that race a delete --------------------------------------------------------------
# Another request's delete is run at the moment that once turned a listing or a second delete
# into an unhandled FileNotFoundError (a 500 over HTTP): between a snapshot's checksum file
# being read and its tar file being opened, and between one delete's look and its unlink.


def delete_when_checksum_read(
    monkeypatch: pytest.MonkeyPatch, engine: Engine, doomed: SnapshotInfo, *, after: bool
) -> list[str]:
    """Delete ``doomed`` (as another request would) just before or just after its checksum
    file is read; returns a list that names the read once the delete has run."""
    read_text = Path.read_text
    fired: list[str] = []

    def racing_read_text(path: Path, *args: Any, **kwargs: Any) -> str:
        mine = path.name == f"{doomed.name}.tar.sha256" and not fired
        if mine and not after:
            fired.append(path.name)
            engine.delete_snapshot("items", doomed.name)
        text = read_text(path, *args, **kwargs)
        if mine and after:
            fired.append(path.name)
            engine.delete_snapshot("items", doomed.name)
        return text

    monkeypatch.setattr(Path, "read_text", racing_read_text)
    return fired


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_a_snapshot_deleted_while_the_snapshots_are_listed_is_whole_or_left_out(
    engine: Engine,
    items: Collection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    after: bool,
) -> None:
    doomed, kept = engine.snapshot("items"), engine.snapshot("items")
    fired = delete_when_checksum_read(monkeypatch, engine, doomed, after=after)
    listed = engine.list_snapshots("items")
    assert fired
    assert listed in ([doomed, kept], [kept])
    assert engine.list_snapshots("items") == [kept]
    assert not caplog.records  # a deleted snapshot is not reported as unreadable


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_a_snapshot_deleted_while_it_is_opened_is_read_whole_or_not_found(
    engine: Engine, items: Collection, monkeypatch: pytest.MonkeyPatch, after: bool
) -> None:
    doomed = engine.snapshot("items")
    expected = doomed.path.read_bytes()
    fired = delete_when_checksum_read(monkeypatch, engine, doomed, after=after)
    try:
        info, file = engine.open_snapshot("items", doomed.name)
    except SnapshotNotFound:
        assert not after  # deleted before the file was opened
    else:
        with file:
            assert (info, file.read()) == (doomed, expected)
    assert fired
    assert not doomed.path.exists()


def test_of_two_deletes_of_one_snapshot_at_once_one_finds_it_gone(
    engine: Engine, items: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed = engine.snapshot("items")
    unlink = Path.unlink
    raced: list[Path] = []

    def racing_unlink(path: Path, missing_ok: bool = False) -> None:
        if path == doomed.path and not raced:
            raced.append(path)
            engine.delete_snapshot("items", doomed.name)  # the other request's delete
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", racing_unlink)
    with pytest.raises(SnapshotNotFound):
        engine.delete_snapshot("items", doomed.name)
    assert raced
    assert engine.list_snapshots("items") == []


# -- hostile snapshot files ----------------------------------------------------------------


@dataclass
class Parts:
    """The members of a real snapshot, to build hostile variants from."""

    files: dict[str, bytes]
    manifest: dict[str, Any]
    sentinel: Path

    def manifest_for(self, files: dict[str, bytes]) -> bytes:
        members = [
            {"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
            for n, d in files.items()
        ]
        return orjson.dumps({**self.manifest, "members": members})

    def consistent(self, **changed: bytes) -> list[Entry]:
        """Every member, some changed, with a manifest that agrees with them."""
        files = {**self.files, **changed}
        return [regular("manifest.json", self.manifest_for(files))] + [
            regular(n, d) for n, d in files.items()
        ]


Entry = tuple[tarfile.TarInfo, bytes]


def regular(name: str, data: bytes) -> Entry:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> Entry:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, b""


def write_tar(path: Path, entries: list[Entry]) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def edit_store(store: bytes, tmp: Path, sql: str) -> bytes:
    path = tmp / "edit.sqlite3"
    path.write_bytes(store)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(sql)
    data = path.read_bytes()
    path.unlink()
    return data


def corrupt_pages(store: bytes) -> bytes:
    page_size = int.from_bytes(store[16:18], "big")
    damaged = bytearray(store)
    damaged[page_size : page_size + 200] = b"\xff" * 200  # page 2's b-tree header
    return bytes(damaged)


def huge_member(path: Path, parts: Parts) -> None:
    """A header claiming 1 TiB, written by hand: no terabyte is ever written."""
    info = tarfile.TarInfo("store.sqlite3")
    info.size = 2**40
    with open(path, "wb") as f:
        for entry_info, data in parts.consistent()[:2]:
            f.write(entry_info.tobuf(tarfile.GNU_FORMAT))
            f.write(data + b"\0" * (-len(data) % 512))
        f.write(info.tobuf(tarfile.GNU_FORMAT))
        f.write(b"\0" * 4096)


Craft = Callable[[Parts, Path], list[Entry]]

NAN_VECTOR = np.full(DIM, np.nan, dtype=np.float32).tobytes().hex()
INF_VECTOR = np.r_[np.ones(DIM - 1), np.inf].astype(np.float32).tobytes().hex()
# SQL that spoils the eighth point (id 7 where ids count from 0) as only a tampered file
# can; and what restore says.
EIGHTH = "ORDER BY label LIMIT 7, 1"
UNREADABLE_POINTS = {
    name: (
        f"UPDATE points SET {change} WHERE label = (SELECT label FROM points {EIGHTH})",
        why,
    )
    for name, change, why in [
        ("huge_number", """payload = '{"a": 1e400}'""", "number is infinity"),
        ("lone_surrogate", """payload = '{"a": "\\ud800"}'""", "surrogate"),
        ("invalid_utf8", """payload = CAST(x'7b2261223a2022ff227d' AS TEXT)""", "UTF-8"),
        ("nested_1900", f"""payload = '{{"a": {"[" * 1900}{"]" * 1900}}}'""", "depth"),
        ("nested_300", f"""payload = '{{"a": {"[" * 300}{"]" * 300}}}'""", "not JSON"),
        ("nan_vector", f"vector = x'{NAN_VECTOR}'", "NaN or infinity"),
        ("infinite_vector", f"vector = x'{INF_VECTOR}'", "NaN or infinity"),
    ]
}

HOSTILE: dict[str, tuple[Craft, str]] = {
    "parent_path": (
        lambda p, tmp: [*p.consistent(), regular("../sentinel/pwned", b"x")],
        "points outside the snapshot",
    ),
    "parent_path_first": (
        lambda p, tmp: [regular("../sentinel/pwned", b"x"), *p.consistent()],
        "points outside the snapshot",
    ),
    "absolute_path": (
        lambda p, tmp: [*p.consistent(), regular(str(p.sentinel / "pwned"), b"x")],
        "absolute path",
    ),
    "symlink": (
        lambda p, tmp: [
            *p.consistent()[:1],
            special("store.sqlite3", tarfile.SYMTYPE, str(p.sentinel / "pwned")),
        ],
        "symbolic link",
    ),
    "hardlink": (
        lambda p, tmp: [*p.consistent(), special("index.vsi", tarfile.LNKTYPE, "/etc/passwd")],
        "hard link",
    ),
    "fifo": (lambda p, tmp: [*p.consistent(), special("index.vsi", tarfile.FIFOTYPE)], "FIFO"),
    "device": (
        lambda p, tmp: [*p.consistent(), special("index.vsi", tarfile.CHRTYPE)],
        "character device",
    ),
    "directory": (
        lambda p, tmp: [special("sentinel", tarfile.DIRTYPE), *p.consistent()],
        "directory",
    ),
    "too_many_members": (
        lambda p, tmp: [*p.consistent(), *(regular(f"f{i}", b"") for i in range(10))],
        "more than 8 members",
    ),
    "unexpected_member": (
        lambda p, tmp: [*p.consistent(), regular("evil.py", b"import os")],
        "unexpected member",
    ),
    "missing_manifest": (lambda p, tmp: p.consistent()[1:], "first member must be manifest"),
    "manifest_lists_missing_member": (
        lambda p, tmp: p.consistent()[:-1],
        "missing: ['index.vsi']",
    ),
    "member_not_in_manifest": (
        lambda p, tmp: [
            regular(
                "manifest.json",
                p.manifest_for({k: v for k, v in p.files.items() if k != "index.vsi"}),
            ),
            *p.consistent()[1:],
        ],
        "not listed in the manifest",
    ),
    "duplicate_member": (
        lambda p, tmp: [*p.consistent(), p.consistent()[1]],
        "appears twice",
    ),
    "member_differs_from_manifest": (
        lambda p, tmp: [
            p.consistent()[0],
            *(
                regular(n, corrupt_pages(d) if n == "store.sqlite3" else d)
                for n, d in p.files.items()
            ),
        ],
        "does not match its SHA-256",
    ),
    "manifest_not_json": (
        lambda p, tmp: [regular("manifest.json", b"{not json"), *p.consistent()[1:]],
        "manifest.json is not valid",
    ),
    "corrupt_database": (
        lambda p, tmp: p.consistent(**{"store.sqlite3": corrupt_pages(p.files["store.sqlite3"])}),
        "the store is",
    ),
    "not_a_database": (
        lambda p, tmp: p.consistent(**{"store.sqlite3": b"SQLite format 3\0" + b"\x01" * 4000}),
        "not a usable SQLite database",
    ),
    "foreign_schema": (
        lambda p, tmp: p.consistent(
            **{
                "store.sqlite3": edit_store(
                    p.files["store.sqlite3"],
                    tmp,
                    "CREATE TRIGGER evil AFTER INSERT ON points BEGIN DELETE FROM meta; END",
                )
            }
        ),
        "not those of a vecserve store",
    ),
    "vectors_of_another_dimension": (
        lambda p, tmp: p.consistent(
            **{
                "store.sqlite3": edit_store(
                    p.files["store.sqlite3"], tmp, "UPDATE points SET vector = x'0000803f'"
                )
            }
        ),
        f"are not {DIM} float32 values",
    ),
    **{
        f"unreadable_point_{case}": (
            lambda p, tmp, sql=sql: p.consistent(
                **{"store.sqlite3": edit_store(p.files["store.sqlite3"], tmp, sql)}
            ),
            message,
        )
        for case, (sql, message) in UNREADABLE_POINTS.items()
    },
    "config_differs_from_manifest": (
        lambda p, tmp: p.consistent(**{"config.json": orjson.dumps({"name": "x", "dim": 3})}),
        "config.json does not match",
    ),
}


@pytest.fixture
def parts(engine: Engine, items: Collection, tmp_path: Path) -> Parts:
    items.optimize()
    info = engine.snapshot("items")
    with tarfile.open(info.path) as tar:
        files = {}
        for member in tar:
            source = tar.extractfile(member)
            assert source is not None
            files[member.name] = source.read()
    manifest = orjson.loads(files.pop("manifest.json"))
    sentinel = tmp_path / "sentinel"  # beside the data folder
    sentinel.mkdir()
    return Parts(files, manifest, sentinel)


def assert_nothing_written(engine: Engine, tmp_path: Path, before: set[Path]) -> None:
    assert list((tmp_path / "sentinel").iterdir()) == []
    assert set(tmp_path.iterdir()) == before
    assert engine.list_collections() == ["items"]
    assert [p.name for p in (engine.path / "collections").iterdir()] == ["items"]
    assert not list((engine.path / "snapshots").glob(".*"))
    assert not list((engine.path / "snapshots").glob("*/.*"))
    with pytest.raises(CollectionNotFound):
        engine.get_collection("evil")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_snapshot_is_refused_and_leaves_nothing_behind(
    engine: Engine, parts: Parts, tmp_path: Path, case: str
) -> None:
    craft, message = HOSTILE[case]
    crafted = tmp_path / "crafted.tar"
    write_tar(crafted, craft(parts, tmp_path))
    before = set(tmp_path.iterdir())
    digest = hashlib.sha256(crafted.read_bytes()).hexdigest()
    with pytest.raises(InvalidSnapshot, match=re.escape(message)) as raised:
        engine.restore_snapshot("evil", crafted, sha256=digest)
    assert raised.value.status_code == 422
    assert_nothing_written(engine, tmp_path, before)


def test_member_claiming_more_bytes_than_the_file_holds_is_refused(
    engine: Engine, parts: Parts, tmp_path: Path
) -> None:
    crafted = tmp_path / "crafted.tar"
    huge_member(crafted, parts)
    before = set(tmp_path.iterdir())
    assert crafted.stat().st_size < 1024 * 1024
    digest = hashlib.sha256(crafted.read_bytes()).hexdigest()
    with pytest.raises(InvalidSnapshot, match="claims 1099511627776 bytes"):
        engine.restore_snapshot("evil", crafted, sha256=digest)
    assert_nothing_written(engine, tmp_path, before)


def test_file_that_is_not_a_tar_is_refused(engine: Engine, parts: Parts, tmp_path: Path) -> None:
    crafted = tmp_path / "crafted.tar"
    crafted.write_bytes(vectors.rng.bytes(10_000))
    before = set(tmp_path.iterdir())
    digest = hashlib.sha256(crafted.read_bytes()).hexdigest()
    with pytest.raises(InvalidSnapshot):
        engine.restore_snapshot("evil", crafted, sha256=digest)
    assert_nothing_written(engine, tmp_path, before)


def test_wrong_checksum_is_refused_before_the_file_is_read(
    engine: Engine, items: Collection, parts: Parts, tmp_path: Path
) -> None:
    info = engine.snapshot("items")
    before = set(tmp_path.iterdir())
    with pytest.raises(ChecksumMismatch) as raised:
        engine.restore_snapshot("evil", info.path, sha256="0" * 64)
    assert raised.value.name == "ChecksumMismatch"
    assert isinstance(raised.value, InvalidSnapshot)
    with pytest.raises(InvalidInput, match="64 hexadecimal"):
        engine.restore_snapshot("evil", info.path, sha256="abc")
    assert_nothing_written(engine, tmp_path, before)
