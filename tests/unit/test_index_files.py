"""Index files are caches: stale ones catch up, damaged ones are rebuilt, data never lost."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from indexer import Engine, IndexBuild

rng = np.random.default_rng(3)
DATA = rng.standard_normal((3_000, 16)).astype(np.float32)
QUERIES = rng.standard_normal((20, 16)).astype(np.float32)


def build(path: Path, index: str) -> list[list[tuple[object, float]]]:
    with Engine(path, background=False) as engine:
        col = engine.create_collection("c", dim=16, metric="l2", index=index)
        col.upsert(list(range(len(DATA))), DATA, [{"i": i} for i in range(len(DATA))])
        col.optimize()
        return results(col)


def results(col: object) -> list[list[tuple[object, float]]]:
    hits = col.search(QUERIES, k=5, params={"exact": True})  # type: ignore[attr-defined]
    return [[(h.id, round(h.score, 4)) for h in row] for row in hits]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))


def empty(path: Path) -> None:
    path.write_bytes(b"")


def remove(path: Path) -> None:
    path.unlink()


def another_collections(path: Path) -> None:
    """A sound index file, of another collection with another dimension."""
    with tempfile.TemporaryDirectory() as other, Engine(other, background=False) as engine:
        col = engine.create_collection("o", dim=8, metric="l2")
        col.upsert(list(range(50)), rng.standard_normal((50, 8)).astype(np.float32))
        engine.close()
        path.write_bytes((Path(other) / "collections" / "o" / "index.vsi").read_bytes())


@pytest.mark.parametrize(
    "damage", [truncate, garbage, flip_a_byte, empty, remove, another_collections]
)
@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_a_damaged_index_file_is_rebuilt_with_the_same_results(
    tmp_path: Path, index: str, damage: Callable[[Path], None]
) -> None:
    expected = build(tmp_path, index)
    damage(tmp_path / "collections" / "c" / "index.vsi")
    with Engine(tmp_path, background=False) as engine:
        col = engine.get_collection("c")
        assert col.count() == len(DATA)
        assert col.index_info["size"] == len(DATA)
        assert col.index_info["family"] == index
        assert results(col) == expected


def test_a_stale_index_catches_up_with_the_store_on_open(tmp_path: Path) -> None:
    build(tmp_path, "hnsw")
    index_file = tmp_path / "collections" / "c" / "index.vsi"
    saved = index_file.read_bytes()
    with Engine(tmp_path, background=False) as engine:
        col = engine.get_collection("c")
        col.delete(list(range(100)))
        col.upsert([0, "new"], DATA[:2] + 1)
        expected = results(col)
    index_file.write_bytes(saved)  # as if the process died before saving the index
    with Engine(tmp_path, background=False) as engine:
        col = engine.get_collection("c")
        assert col.count() == len(DATA) - 100 + 2
        assert col.index_info["size"] == col.count()
        assert results(col) == expected
        approximate = col.search(DATA[:2] + 1, k=1)
        assert [row[0].id for row in approximate] == [0, "new"]


def test_rebuilds_are_reported_to_the_engines_observer(tmp_path: Path) -> None:
    seen: list[IndexBuild] = []
    with Engine(tmp_path, background=False, on_index_build=seen.append) as engine:
        col = engine.create_collection("c", dim=16, metric="l2", index="flat")
        col.upsert(list(range(100)), DATA[:100])
    seen.clear()
    (tmp_path / "collections" / "c" / "index.vsi").unlink()
    with Engine(tmp_path, background=False, on_index_build=seen.append) as engine:
        assert engine.get_collection("c").count() == 100
    assert [(b.collection, b.family, b.points) for b in seen] == [("c", "flat", 100)]
    assert seen[0].seconds >= 0
