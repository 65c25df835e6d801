"""Points through the SDK: upsert (batched, parallel), get, delete, scroll."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.vectors import NormalVectors
from vecserve_client import (
    Client,
    CollectionNotFound,
    DimensionMismatch,
    DuplicateIds,
    InvalidFilter,
    Point,
    PointNotFound,
    RequestTooLarge,
)

from .conftest import LIMITS

vectors = NormalVectors(seed=11, dim=4)


def test_upsert_numpy_vectors_and_get_them_back_as_float32_arrays(
    client: Client, name: str
) -> None:
    client.create_collection(name, 4, metric="l2")
    data = vectors(3)
    written = client.upsert(name, ["a", "b", 7], data, payloads=[{"n": 1}, None, {"n": 3}])
    assert written == 3
    points = client.get(name, [7, "a", "missing", "b"], with_vectors=True)
    assert [p.id for p in points] == [7, "a", "b"]  # the order asked; missing left out
    assert all(isinstance(p, Point) for p in points)
    assert [p.payload for p in points] == [{"n": 3}, {"n": 1}, {}]
    for point, row in zip(points, [data[2], data[0], data[1]], strict=True):
        assert isinstance(point.vector, np.ndarray)
        assert point.vector.dtype == np.float32
        np.testing.assert_array_equal(point.vector, row)  # exact: float32 both ways
    assert client.get(name, ["a"])[0].vector is None


def test_upsert_takes_lists_of_floats_and_replaces_by_id(client: Client, name: str) -> None:
    client.create_collection(name, 2, metric="l2")
    client.upsert(name, [1, 2], [[0.5, 1.5], [2.0, 3.0]])
    client.upsert(name, [1], [[9.0, 9.0]], payloads=[{"v": 2}])
    assert client.get_collection(name).count == 2
    (point,) = client.get(name, [1], with_vectors=True)
    assert point.payload == {"v": 2}
    assert point.vector is not None
    assert point.vector.tolist() == [9.0, 9.0]


def test_large_upsert_is_split_into_batches_under_the_server_limit(
    client: Client, name: str
) -> None:
    client.create_collection(name, 4)
    n = 2 * LIMITS["max_points_per_upsert"] + 50
    progress: list[tuple[int, int]] = []
    written = client.upsert(
        name, list(range(n)), vectors(n), batch_size=100, on_progress=lambda *p: progress.append(p)
    )
    assert written == n
    assert progress == [(100, n), (200, n), (n, n)]
    assert client.get_collection(name).count == n


def test_parallel_upsert_writes_every_batch_and_reports_progress(client: Client, name: str) -> None:
    client.create_collection(name, 4)
    n = 1_000
    progress: list[int] = []
    written = client.upsert(
        name,
        [f"p{i}" for i in range(n)],
        vectors(n),
        payloads=[{"i": i} for i in range(n)],
        batch_size=64,
        parallel=4,
        on_progress=lambda done, total: progress.append(done),
    )
    assert written == n
    assert len(progress) == 16  # ceil(1000 / 64)
    assert progress == sorted(progress)
    assert progress[-1] == n
    assert client.get_collection(name).count == n
    assert client.get(name, ["p999"])[0].payload == {"i": 999}


def test_a_batch_over_the_server_limit_raises_request_too_large(client: Client, name: str) -> None:
    client.create_collection(name, 4)
    n = LIMITS["max_points_per_upsert"] + 1
    with pytest.raises(RequestTooLarge) as caught:
        client.upsert(name, list(range(n)), vectors(n), batch_size=n)
    assert caught.value.status_code == 413
    assert client.get_collection(name).count == 0


def test_wrong_dimension_raises_dimension_mismatch(client: Client, name: str) -> None:
    client.create_collection(name, 4)
    with pytest.raises(DimensionMismatch) as caught:
        client.upsert(name, [1], vectors(1, dim=5))
    assert caught.value.status_code == 422
    assert "4" in caught.value.message


def test_upsert_checks_its_columns_before_sending(client: Client, name: str) -> None:
    with pytest.raises(ValueError, match="3 vectors for 2 ids"):
        client.upsert(name, [1, 2], vectors(3))
    with pytest.raises(ValueError, match="1 payloads for 2 ids"):
        client.upsert(name, [1, 2], vectors(2), payloads=[{}])
    with pytest.raises(ValueError, match="exactly one of vectors, texts or images"):
        client.upsert(name, [1], vectors(1), texts=["a"])


def test_upsert_into_a_missing_collection_raises_collection_not_found(client: Client) -> None:
    with pytest.raises(CollectionNotFound):
        client.upsert("no-such-collection", [1], vectors(1))


def test_delete_by_ids_and_by_filter(client: Client, name: str) -> None:
    client.create_collection(name, 4)
    client.upsert(name, list(range(10)), vectors(10), payloads=[{"i": i} for i in range(10)])
    assert client.delete(name, [0, 1, 42]) == 2
    assert client.delete(name, filter={"i": {"$gte": 7}}) == 3
    remaining = sorted(p.id for p in client.scroll(name))
    assert remaining == [2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="exactly one of ids or filter"):
        client.delete(name)
    with pytest.raises(InvalidFilter):
        client.delete(name, filter={"i": {"$bogus": 1}})


def test_scroll_follows_the_cursor_through_every_point(client: Client, name: str) -> None:
    client.create_collection(name, 4)
    data = vectors(30)
    client.upsert(name, list(range(30)), data, payloads=[{"odd": i % 2} for i in range(30)])
    points = list(client.scroll(name, page_size=7, with_vectors=True))
    assert sorted(p.id for p in points) == list(range(30))
    assert all(p.vector is not None for p in points)
    by_id = {p.id: p.vector for p in points}
    np.testing.assert_array_equal(by_id[12], data[12])
    odd = list(client.scroll(name, filter={"odd": 1}, page_size=4))
    assert sorted(p.id for p in odd) == list(range(1, 30, 2))
    assert odd[0].vector is None


def test_scroll_of_an_empty_collection_yields_nothing(client: Client, name: str) -> None:
    client.create_collection(name, 4)
    assert list(client.scroll(name)) == []


def test_get_point_returns_one_point_and_keeps_string_and_integer_ids_apart(
    client: Client, name: str
) -> None:
    client.create_collection(name, 4, metric="l2")
    data = vectors(3)
    client.upsert(name, [7, "7", "docs/a b?.md"], data, payloads=[{"n": 1}, {"n": 2}, None])
    point = client.get_point(name, 7)
    assert isinstance(point, Point)
    assert (point.id, point.payload, point.vector) == (7, {"n": 1}, None)
    assert client.get_point(name, "7").payload == {"n": 2}
    with_vector = client.get_point(name, "docs/a b?.md", with_vectors=True)
    assert with_vector.id == "docs/a b?.md"
    assert with_vector.vector is not None
    np.testing.assert_array_equal(with_vector.vector, data[2])
    with pytest.raises(PointNotFound) as caught:
        client.get_point(name, 8)
    assert caught.value.status_code == 404
    with pytest.raises(CollectionNotFound):
        client.get_point("no-such-collection", 7)


def test_numpy_values_in_payloads_and_filters_go_as_plain_json(client: Client, name: str) -> None:
    client.create_collection(name, 4)
    payloads = [
        {"price": np.float32(1.5), "n": np.int64(i), "ok": np.bool_(i % 2), "v": np.arange(2)}
        for i in range(4)
    ]
    client.upsert(name, np.arange(4), vectors(4), payloads=payloads)
    (point,) = client.get(name, np.array([1]))
    assert point.payload == {"price": 1.5, "n": 1, "ok": True, "v": [0, 1]}
    assert type(point.payload["n"]) is int
    hits = client.search(name, vectors(1)[0], filter={"n": {"$lt": np.int64(2)}})
    assert {h.id for h in hits} == {0, 1}
    assert client.delete(name, filter={"ok": np.bool_(True)}) == 2
    assert client.delete(name, np.array([0, 2])) == 2
    assert client.get_collection(name).count == 0


def test_ids_repeated_across_batches_raise_duplicate_ids_before_anything_is_sent(
    client: Client, name: str
) -> None:
    client.create_collection(name, 4)
    with pytest.raises(DuplicateIds) as caught:
        client.upsert(name, [1, 2, 3, 1], vectors(4), batch_size=2)
    assert caught.value.status_code == 422
    assert "[1]" in caught.value.message
    with pytest.raises(DuplicateIds):
        client.upsert(name, np.array([5, 5]), vectors(2))
    assert client.get_collection(name).count == 0
    assert client.upsert(name, [1, "1"], vectors(2), batch_size=1) == 2  # not the same id
