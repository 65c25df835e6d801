"""A batch's hits built when read stand for the list of lists built at once."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from indexer.collection.hit_lists import HitLists
from indexer.collection.results import hits
from indexer.points import Hit


def batch() -> tuple[np.ndarray, np.ndarray, list[list[Hit]]]:
    """Ids [nq * k], scores [nq, k] and the hits built at once from them."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 50, size=(6, 3))
    scores = rng.standard_normal((6, 3)).astype(np.float32)
    names = np.array([f"p{i}" if i % 2 else i for i in range(50)], dtype=object)
    expected = hits(scores, labels, lambda found: names[found].tolist(), None, False)
    return names[labels.ravel()], scores, expected


def test_rows_read_one_at_a_time_equal_the_hits_built_at_once() -> None:
    ids, scores, expected = batch()
    lazy = HitLists(ids, scores)
    assert len(lazy) == 6
    assert [lazy[i] for i in (3, 0, -1, 5)] == [expected[i] for i in (3, 0, -1, 5)]
    assert lazy[1:4] == expected[1:4]
    assert list(lazy) == expected
    assert lazy == expected
    assert expected == lazy


def test_a_row_read_again_is_the_same_list() -> None:
    ids, scores, _ = batch()
    lazy = HitLists(ids, scores)
    first = lazy[2]
    first.append(Hit("extra", 0.0))  # a caller may change its list, as with a real one
    assert lazy[2] is first
    assert next(iter(lazy[2:3])) is first


def test_iterating_builds_every_row_at_once() -> None:
    ids, scores, expected = batch()
    lazy = HitLists(ids, scores)
    rows = list(lazy)
    assert rows == expected
    assert all(lazy[i] is row for i, row in enumerate(rows))


def test_it_refuses_an_index_past_the_end_and_compares_with_lists_only() -> None:
    ids, scores, expected = batch()
    lazy = HitLists(ids, scores)
    with pytest.raises(IndexError):
        lazy[6]
    assert lazy != tuple(expected)
    assert lazy != expected[:-1]


def test_it_pickles_as_the_list_it_stands_for() -> None:
    ids, scores, expected = batch()
    copied = pickle.loads(pickle.dumps(HitLists(ids, scores)))
    assert type(copied) is list
    assert copied == expected
