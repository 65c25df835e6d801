"""The label <-> id table, on its own: no store, no index."""

from __future__ import annotations

import numpy as np

from indexer.collection.point_ids import ID_TABLE_MIN_HITS, PointIds
from indexer.points import encode_id


def table(ids: list[int | str]) -> PointIds:
    return PointIds((label, encode_id(i)) for label, i in enumerate(ids))


def test_labels_and_ids_map_both_ways() -> None:
    ids = table(["a", 7, "7"])
    assert len(ids) == 3
    assert [ids.label("a"), ids.label(7), ids.label("7"), ids.label("b")] == [0, 1, 2, None]
    assert ids.ids(np.array([2, 0, 1])) == ["7", "a", 7]


def test_an_upsert_replaces_labels_and_a_delete_forgets_them() -> None:
    ids = table(["a", "b"])
    ids.upserted([encode_id("a"), encode_id("c")], np.array([2, 3]), ["a", "c"], np.array([0]))
    assert ids.live().tolist() == [1, 2, 3]
    assert ids.label("a") == 2
    ids.deleted(np.array([1, 3]))
    assert ids.live().tolist() == [2]
    assert (ids.label("b"), ids.label("c")) == (None, None)


def test_large_batches_read_the_table_and_newer_labels_from_the_dict() -> None:
    n = 4 * ID_TABLE_MIN_HITS
    ids = table(list(range(n)))
    labels = np.arange(n)[::-1].copy()
    assert ids.ids(labels) == labels.tolist()  # builds the table
    ids.upserted([encode_id("new")], np.array([n]), ["new"], np.array([0]))
    batch = np.concatenate([labels[:-1], [n]])  # label 0 is gone, n is newer than the table
    assert ids.ids(batch) == [*labels[:-1].tolist(), "new"]
    assert ids.id_array(batch).tolist() == [*labels[:-1].tolist(), "new"]


def test_sparse_labels_build_no_table_and_still_answer() -> None:
    n = 2 * ID_TABLE_MIN_HITS
    ids = PointIds((10 * label, encode_id(label)) for label in range(n))
    labels = 10 * np.arange(n)
    assert ids.ids(labels) == list(range(n))
    assert ids.id_array(labels).tolist() == list(range(n))


def test_a_result_grid_has_none_where_rows_are_short() -> None:
    ids = table(["a", "b", "c"])
    grid = ids.id_grid(np.array([[2, 0], [1, -1]]))
    assert grid.dtype == object
    assert grid.tolist() == [["c", "a"], ["b", None]]
