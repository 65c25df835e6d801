"""The served index on its own: a real flat FAISS index over stored vectors held in an
array (no engine, no SQLite), its file in a temporary folder."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from indexer.collection.config import CollectionConfig
from indexer.collection.served_index import (
    CATCH_UP_LAST,
    CATCH_UP_ROUNDS,
    CLOSE_SAVE_MIN,
    REBUILD_BACKLOG_MIN,
    REBUILD_WAIT_BATCH,
    STAGE_FIRST,
    STAGE_HOLD_S,
    RebuildBacklog,
    ServedIndex,
    StagingPace,
)
from indexer.collection.upkeep import IndexUpkeep
from indexer.devices import Placement
from indexer.indexes import load_index
from indexer.spec import IndexSpec, SearchParams

DIM = 8
_RAW = np.random.default_rng(5).standard_normal((8000, DIM)).astype(np.float32)
VECTORS = _RAW / np.linalg.norm(_RAW, axis=1, keepdims=True)  # as cosine stores them


class Store:
    """Stored vectors: the first ``n`` rows of VECTORS, labelled by row."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, labels: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        labels = self.live() if labels is None else labels
        if len(labels):
            yield labels, VECTORS[labels]

    def live(self) -> np.ndarray:
        return np.arange(self.n)


class Hold:
    """A stand-in for the collection's write lock that counts its holds and can fail one."""

    def __init__(self, fail_at: int = 0) -> None:
        self.holds = 0
        self._fail_at = fail_at

    @contextmanager
    def __call__(self) -> Iterator[None]:
        self.holds += 1
        if self.holds == self._fail_at:
            raise RuntimeError("interrupted")
        yield


def served(folder: Path, store: Store, seq: int = 1) -> ServedIndex:
    config = CollectionConfig(name="c", dim=DIM, index=IndexSpec(kind="flat"))
    upkeep = IndexUpkeep(config, folder, Placement())
    return ServedIndex(upkeep, store, seq, store.live())


def found(part: ServedIndex, row: int) -> int:
    """The label that the served index finds nearest to stored row ``row``."""
    return int(part.index.search(VECTORS[row : row + 1], 1, SearchParams(), None)[1][0, 0])


def test_a_staged_batch_is_served_only_once_its_upsert_is_committed(tmp_path: Path) -> None:
    store = Store(100)
    part = served(tmp_path, store)
    labels = np.arange(100, 300)
    hold = Hold()
    assert part.stage(labels, VECTORS[labels], hold)
    assert hold.holds > 1  # a chunk per hold, not the whole batch in one
    assert found(part, 250) != 250  # staged, not served
    store.n = 300
    part.upserted(labels, VECTORS[labels], np.array([5]), True, store.live)
    assert found(part, 250) == 250
    assert part.index.labels().tolist() == [label for label in range(300) if label != 5]


def test_a_staging_interrupted_midway_leaves_the_index_as_it_was(tmp_path: Path) -> None:
    part = served(tmp_path, Store(100))
    labels = np.arange(100, 100 + 4 * STAGE_FIRST)
    with pytest.raises(RuntimeError, match="interrupted"):
        part.stage(labels, VECTORS[labels], Hold(fail_at=2))  # after the first chunk
    assert part.index.labels().tolist() == list(range(100))
    assert part.index.size == 100


def test_a_failed_index_change_is_reconciled_with_the_store(tmp_path: Path) -> None:
    store = Store(100)
    part = served(tmp_path, store)
    store.n = 120

    def broken(index: object) -> None:
        raise RuntimeError("the index refused the change")

    part.apply(broken, store.live)
    assert part.index.labels().tolist() == list(range(120))


@pytest.mark.parametrize(
    "growth",
    [[0], [2000, CATCH_UP_LAST], [CATCH_UP_LAST + 1] * CATCH_UP_ROUNDS],
    ids=["nothing-written", "until-a-round-adds-few", "bounded-rounds"],
)
def test_a_rebuild_catches_up_in_rounds_with_the_points_written_during_it(
    tmp_path: Path, growth: list[int]
) -> None:
    store = Store(1000)
    part = served(tmp_path, store)
    written = iter(growth)

    def live() -> np.ndarray:  # each round finds the points written since the last
        store.n += next(written)
        return store.live()

    index = part.rebuilt(store.n, live)
    assert next(written, None) is None  # each round taken; one more would have raised
    assert index.labels().tolist() == list(range(store.n))
    store.n += 10  # written during the last round: added with writes held off
    assert part.catch_up(index, store.live()) == 10
    old = part.index
    part.swap(index, store.n)
    assert part.index is index is not old
    assert part.unsaved == store.n  # the file holds the old index


def test_saving_clears_the_changes_not_in_the_file(tmp_path: Path) -> None:
    store = Store(100)
    part = served(tmp_path, store, seq=3)
    part.wrote(CLOSE_SAVE_MIN)
    assert part.unsaved == CLOSE_SAVE_MIN
    assert not part.save_on_close
    part.wrote(1)
    assert part.save_on_close
    part.save(9)
    assert part.unsaved == 0
    loaded = load_index(tmp_path / "index.vsi", part.index.metric, DIM)
    assert loaded is not None
    assert loaded[1] == 9


def test_an_index_file_behind_the_store_opens_unsaved(tmp_path: Path) -> None:
    store = Store(100)
    assert served(tmp_path, store, seq=1).unsaved == 0  # built and saved at once
    store.n = 150
    reopened = served(tmp_path, store, seq=2)
    assert reopened.unsaved == 1
    assert reopened.index.size == 150


def sizes(pace: StagingPace, n: int, per_point: float | None) -> list[int]:
    """The chunk sizes of a batch of ``n`` whose holds take ``per_point`` seconds a point
    (None: the sizes the pace plans, no hold reported)."""
    chunks = []
    for chunk in pace.chunks(n):
        chunks.append(chunk)
        if per_point is not None:
            pace.held(chunk.stop - chunk.start, per_point * (chunk.stop - chunk.start))
    assert [c.start for c in chunks[1:]] == [c.stop for c in chunks[:-1]]
    assert chunks[0].start == 0
    assert chunks[-1].stop == n
    return [c.stop - c.start for c in chunks]


def test_staged_chunks_are_sized_to_the_hold_and_kept_from_batch_to_batch() -> None:
    pace = StagingPace()
    slow = STAGE_HOLD_S / 2  # a point takes half the hold: chunks of 2 points
    first = sizes(pace, 20, slow)
    assert first[0] == STAGE_FIRST
    assert set(first[1:-1]) == {2}
    # The next batch starts at the pace of the last, not at the first chunk's guess.
    assert sizes(pace, 6, slow) == [2, 2, 2]
    # Slower still: a point a hold; faster: chunks grow, at most doubling each time.
    assert sizes(pace, 4, 4 * STAGE_HOLD_S) == [2, 1, 1]
    assert sizes(pace, 15, STAGE_HOLD_S / 100) == [1, 2, 4, 8]


def test_a_rebuilt_index_is_staged_into_from_the_first_chunk_again(tmp_path: Path) -> None:
    store = Store(100)
    part = served(tmp_path, store)
    labels = np.arange(100, 5_000)
    part.stage(labels, VECTORS[labels], Hold())  # a flat index: large chunks at once
    part.upserted(labels, VECTORS[labels], np.empty(0, np.int64), True, store.live)
    assert max(sizes(part._pace, 10_000, None)) > 100 * STAGE_FIRST
    store.n = 5_000
    part.swap(part.rebuilt(store.n, store.live), store.n)
    assert sizes(part._pace, 10_000, None)[0] == STAGE_FIRST


def test_small_upserts_never_wait_for_a_rebuild() -> None:
    backlog = RebuildBacklog()
    with backlog.rebuilding():
        backlog.wrote(REBUILD_BACKLOG_MIN + 1)
        backlog.wait_for_room(REBUILD_WAIT_BATCH - 1, lambda: 0)  # returns at once


def test_a_large_upsert_waits_while_a_rebuild_has_too_much_to_catch_up_with() -> None:
    backlog = RebuildBacklog()
    waited = threading.Event()

    def upsert() -> None:
        backlog.wait_for_room(REBUILD_WAIT_BATCH, lambda: 0)
        waited.set()

    with backlog.rebuilding():
        backlog.wrote(REBUILD_BACKLOG_MIN + 1)
        writer = threading.Thread(target=upsert)
        writer.start()
        assert not waited.wait(0.2)
    writer.join(timeout=10)
    assert waited.is_set()


def test_the_backlog_counts_only_writes_during_a_rebuild_and_scales_with_the_collection() -> None:
    backlog = RebuildBacklog()
    backlog.wrote(10 * REBUILD_BACKLOG_MIN)  # no rebuild runs: not counted
    with backlog.rebuilding():
        backlog.wait_for_room(REBUILD_WAIT_BATCH, lambda: 0)
        backlog.wrote(2 * REBUILD_BACKLOG_MIN)
        # A quarter of a collection this large is more than the backlog: no wait.
        backlog.wait_for_room(REBUILD_WAIT_BATCH, lambda: 8 * REBUILD_BACKLOG_MIN + 4)
