"""Snapshots carry the full-text index, and a restore checks it."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import orjson
import pytest

from indexer import Engine
from indexer.errors import InvalidSnapshot
from tests.unit.test_snapshots import edit_store, regular, write_tar


def words(collection: object, text: str) -> list[object]:
    result = collection.query({"prefetch": [{"lexical": {"text": text}}], "limit": 100})  # type: ignore[attr-defined]
    return [h.id for h in result.hits]


@pytest.fixture
def snapshot(engine: Engine) -> tuple[Path, str]:
    c = engine.create_collection("docs", 4, full_text={"fields": ["title"], "tokenizer": "porter"})
    c.upsert(
        [1, 2, 3],
        np.eye(3, 4, dtype=np.float32),
        [{"title": t} for t in ("red shoes", "blue hat", "red hat")],
    )
    c.delete([3])
    info = engine.snapshot("docs")
    return info.path, info.sha256


def test_a_restored_collection_finds_points_by_their_words(
    engine: Engine, snapshot: tuple[Path, str]
) -> None:
    path, sha256 = snapshot
    restored = engine.restore_snapshot("copy", path, sha256=sha256)
    assert restored.full_text is not None
    assert restored.full_text["tokenizer"] == "porter"
    assert sorted(words(restored, "red")) == [1]  # point 3 was deleted before the snapshot
    assert sorted(words(restored, "hats")) == [2]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("INSERT INTO ft (rowid, c0) VALUES (999, 'ghost')", "deleted points"),
        ("UPDATE ft_content SET c0 = 'green boots' WHERE id = 1", "full-text index is damaged"),
        ("UPDATE meta SET value = '{\"fields\": 3}' WHERE key = 'full_text'", "declaration"),
    ],
)
def test_a_damaged_full_text_index_is_refused(
    engine: Engine, snapshot: tuple[Path, str], tmp_path: Path, sql: str, message: str
) -> None:
    path, _ = snapshot
    with tarfile.open(path) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    files["store.sqlite3"] = edit_store(files["store.sqlite3"], tmp_path, sql)
    manifest = orjson.loads(files.pop("manifest.json"))
    manifest["members"] = [
        {"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for n, d in files.items()
    ]
    crafted = tmp_path / "crafted.tar"
    write_tar(
        crafted,
        [
            regular("manifest.json", orjson.dumps(manifest)),
            *(regular(n, d) for n, d in files.items()),
        ],
    )
    digest = hashlib.sha256(crafted.read_bytes()).hexdigest()
    with pytest.raises(InvalidSnapshot, match=message):
        engine.restore_snapshot("copy", crafted, sha256=digest)
    assert "copy" not in engine.list_collections()
