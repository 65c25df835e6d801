"""Index upkeep on its own: stored vectors as an array, the index file in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from indexer.collection.config import CollectionConfig
from indexer.collection.upkeep import (
    CALIBRATION_MIN_POINTS,
    MAX_DEAD_FRACTION,
    RETRAIN_GROWTH,
    TRAIN_SAMPLE_MAX,
    IndexBuild,
    IndexUpkeep,
)
from indexer.devices import Placement
from indexer.indexes import load_index
from indexer.indexes.ivf import IvfIndex
from indexer.spec import IndexSpec

DIM = 8


def stored_from(vectors: np.ndarray):  # type: ignore[no-untyped-def]
    def chunks(labels: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        labels = np.arange(len(vectors)) if labels is None else labels
        if len(labels):
            yield labels, vectors[labels]

    return chunks


def upkeep(
    folder: Path, kind: str = "flat", builds: list[IndexBuild] | None = None, **spec: object
) -> IndexUpkeep:
    config = CollectionConfig(name="c", dim=DIM, index=IndexSpec(kind=kind, **spec))  # type: ignore[arg-type]
    return IndexUpkeep(config, folder, Placement(), builds.append if builds is not None else None)


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return np.random.default_rng(4).standard_normal((3000, DIM)).astype(np.float32)


def test_a_missing_file_is_built_saved_and_reported(tmp_path: Path, vectors: np.ndarray) -> None:
    builds: list[IndexBuild] = []
    index, behind = upkeep(tmp_path, builds=builds).open(
        7, np.arange(100), stored_from(vectors[:100])
    )
    assert (index.family, index.size, behind) == ("flat", 100, False)
    assert [(b.collection, b.family, b.points) for b in builds] == [("c", "flat", 100)]
    loaded = load_index(tmp_path / "index.vsi", index.metric, DIM)
    assert loaded is not None
    assert loaded[1] == 7


def test_a_saved_index_behind_the_store_is_caught_up(tmp_path: Path, vectors: np.ndarray) -> None:
    part = upkeep(tmp_path)
    part.open(1, np.arange(50), stored_from(vectors))
    live = np.arange(10, 80)  # 0-9 deleted since the save, 50-79 added
    reopened, behind = part.open(2, live, stored_from(vectors))
    assert behind
    assert reopened.labels().tolist() == live.tolist()
    _, behind = part.open(1, np.arange(50), stored_from(vectors))
    assert not behind


def test_an_hnsw_build_is_calibrated(tmp_path: Path, vectors: np.ndarray) -> None:
    part = upkeep(tmp_path, "hnsw")
    index = part.build(stored_from(vectors), len(vectors))
    assert index.family == "hnsw"
    assert index.size == len(vectors) >= CALIBRATION_MIN_POINTS
    assert index.default_knob is not None
    assert index.calibrated_on == len(vectors) - 256  # the held-out queries came in after
    assert not part.needs_calibration(index)
    index.add(np.arange(3000, 6000), vectors)  # doubled since its calibration
    assert part.needs_calibration(index)
    assert not part.needs_rebuild(index, 6000)  # growth adds, it never rebuilds


def test_the_family_follows_the_size_with_a_margin_when_shrinking(tmp_path: Path) -> None:
    part = upkeep(tmp_path, "auto", auto_threshold=1000)
    assert part.family(0)[0].family == "flat"
    assert part.family(999)[0].family == "flat"
    assert part.family(1000)[0].family == "hnsw"
    assert part.family(600, current="hnsw")[0].family == "hnsw"  # kept until half the size
    assert part.family(499, current="hnsw")[0].family == "flat"


def test_tombstones_past_the_limit_call_for_a_rebuild(tmp_path: Path, vectors: np.ndarray) -> None:
    part = upkeep(tmp_path, "hnsw")
    index = part.build(stored_from(vectors[:500]), 500)  # below calibration: no knob tuned
    dead = int(MAX_DEAD_FRACTION * 500) + 1
    assert not part.needs_rebuild(index, 500)
    index.remove(np.arange(dead))
    assert part.needs_rebuild(index, 500 - dead)


def test_an_ivf_index_is_retrained_as_it_grows_until_its_sample_is_full(
    tmp_path: Path, vectors: np.ndarray
) -> None:
    part = upkeep(tmp_path, "ivf_flat", storage="int8", nlist=16)
    spec = part.config.index
    index = IvfIndex.build(DIM, part.config.metric, spec, vectors)
    assert index.trained_on == len(vectors)
    assert not part.needs_rebuild(index, RETRAIN_GROWTH * len(vectors))
    assert part.needs_rebuild(index, RETRAIN_GROWTH * len(vectors) + 1)
    # Trained on a full sample (a little under TRAIN_SAMPLE_MAX: each point is drawn at
    # random): a build for a larger collection would train on no more, so growth alone,
    # however large, never rebuilds it.
    index.trained_on = TRAIN_SAMPLE_MAX - 300
    assert not part.needs_rebuild(index, 5_000_000)
    assert not part.needs_upkeep(index, 5_000_000, 0)


def test_upkeep_is_due_for_a_rebuild_or_a_save_far_behind(
    tmp_path: Path, vectors: np.ndarray
) -> None:
    part = upkeep(tmp_path)
    index = part.build(stored_from(vectors[:100]), 100)
    assert not part.needs_upkeep(index, 100, 10_000)
    assert part.needs_upkeep(index, 100, 10_001)
    assert part.needs_upkeep(index, 500_000, 250_001)
    assert not part.needs_upkeep(index, 500_000, 250_000)
