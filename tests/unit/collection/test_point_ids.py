"""The label <-> id table, on its own: no store, no index."""

from __future__ import annotations

import numpy as np

from indexer.collection.point_ids import ID_TABLE_MIN_LABELS, PointIds
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


def test_ids_follow_upserts_of_integers_then_strings() -> None:
    ids = table(list(range(100)))
    ids.upserted([encode_id(100), encode_id(7)], np.array([100, 101]), [100, 7], np.array([7]))
    labels = np.array([101, 0, 100])
    assert ids.ids(labels) == [7, 0, 100]
    assert all(type(i) is int for i in ids.ids(labels))
    ids.upserted([encode_id("7")], np.array([102]), ["7"], np.array([], dtype=np.int64))
    assert ids.ids(np.array([102, 101, 3])) == ["7", 7, 3]
    assert ids.id_array(np.array([102, 101])).tolist() == ["7", 7]


def test_single_upserts_grow_the_table_past_its_size() -> None:
    ids = table(["a"])
    for label in range(1, 300):
        ids.upserted([encode_id(f"p{label}")], np.array([label]), [f"p{label}"], np.array([0])[:0])
    assert ids.ids(np.array([299, 0, 150])) == ["p299", "a", "p150"]


def test_sparse_labels_build_no_table_and_still_answer() -> None:
    n = ID_TABLE_MIN_LABELS // 4
    ids = PointIds((10 * label, encode_id(label)) for label in range(n))
    labels = 10 * np.arange(n)
    assert ids._table is None
    assert ids.ids(labels) == list(range(n))
    assert ids.id_array(labels).tolist() == list(range(n))


def test_labels_spread_by_updates_drop_the_table_and_dense_ones_build_it_again() -> None:
    n = ID_TABLE_MIN_LABELS // 2
    ids = table(list(range(n)))
    assert ids._table is not None
    top = 5 * ID_TABLE_MIN_LABELS  # far past the spread allowed for n points
    ids.upserted([encode_id(0)], np.array([top]), [0], np.array([0]))
    assert ids._table is None
    assert ids.ids(np.array([top, 1])) == [0, 1]
    fresh = np.arange(top + 1, top + 1 + 2 * top)  # enough new points to be dense again
    ids.upserted([encode_id(-int(i)) for i in fresh], fresh, [-int(i) for i in fresh], fresh[:0])
    assert ids._table is not None
    assert ids.ids(np.array([top, 1, int(fresh[-1])])) == [0, 1, -int(fresh[-1])]


def test_a_result_grid_has_none_where_rows_are_short() -> None:
    ids = table(["a", "b", "c"])
    grid = ids.id_grid(np.array([[2, 0], [1, -1]]))
    assert grid.dtype == object
    assert grid.tolist() == [["c", "a"], ["b", None]]
