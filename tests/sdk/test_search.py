"""Search, batch search and recommend through the SDK."""

from __future__ import annotations

import numpy as np
import pytest

from vecserve_client import (
    Client,
    CollectionNotFound,
    DimensionMismatch,
    Hit,
    InvalidFilter,
    InvalidK,
    PointNotFound,
    RequestTooLarge,
)

from .conftest import LIMITS

rng = np.random.default_rng(23)
DATA = rng.standard_normal((60, 8)).astype(np.float32)


@pytest.fixture
def items(client: Client, name: str) -> str:
    """A collection of 60 points 0..59 (l2), with payloads {"i": i, "even": bool}."""
    client.create_collection(name, 8, metric="l2", index="flat")
    payloads = [{"i": i, "even": i % 2 == 0} for i in range(len(DATA))]
    client.upsert(name, list(range(len(DATA))), DATA, payloads=payloads)
    return name


def exact_neighbours(query: np.ndarray, k: int) -> list[int]:
    return np.argsort(np.linalg.norm(DATA - query, axis=1))[:k].tolist()


def test_search_by_vector_returns_typed_hits_nearest_first(client: Client, items: str) -> None:
    hits = client.search(items, DATA[5], k=5)
    assert all(isinstance(h, Hit) for h in hits)
    assert [h.id for h in hits] == exact_neighbours(DATA[5], 5)
    assert hits[0].score == 0.0
    assert [h.score for h in hits] == sorted(h.score for h in hits)  # l2: lower is nearer
    assert hits[0].payload == {"i": 5, "even": False}
    assert hits[0].vector is None


def test_search_takes_a_list_of_floats(client: Client, items: str) -> None:
    hits = client.search(items, DATA[9].tolist(), k=1)
    assert hits[0].id == 9


def test_search_with_filter_without_payload_and_with_vectors(client: Client, items: str) -> None:
    hits = client.search(
        items, DATA[5], k=4, filter={"even": True}, with_payload=False, with_vectors=True
    )
    assert len(hits) == 4
    assert all(h.id % 2 == 0 for h in hits)
    assert all(h.payload is None for h in hits)
    for hit in hits:
        assert isinstance(hit.vector, np.ndarray)
        assert hit.vector.dtype == np.float32
        np.testing.assert_array_equal(hit.vector, DATA[hit.id])


def test_search_by_id_leaves_the_point_itself_out(client: Client, items: str) -> None:
    hits = client.search(items, id=5, k=3)
    assert 5 not in [h.id for h in hits]
    assert [h.id for h in hits] == exact_neighbours(DATA[5], 4)[1:]
    with pytest.raises(PointNotFound):
        client.search(items, id=999)


def test_search_params_pass_through(client: Client, items: str) -> None:
    assert client.search(items, DATA[1], k=1, params={"exact": True})[0].id == 1


def test_search_needs_exactly_one_query(client: Client, items: str) -> None:
    with pytest.raises(ValueError, match="exactly one of vector, text, image or id"):
        client.search(items, DATA[0], id=1)
    with pytest.raises(ValueError, match="exactly one"):
        client.search(items)


def test_search_errors_are_typed(client: Client, items: str) -> None:
    with pytest.raises(DimensionMismatch):
        client.search(items, DATA[0][:4])
    with pytest.raises(InvalidFilter):
        client.search(items, DATA[0], filter={"$or": "not a list"})
    with pytest.raises(InvalidK):
        client.search(items, DATA[0], k=LIMITS["max_k"] + 1)
    with pytest.raises(CollectionNotFound):
        client.search("no-such-collection", DATA[0])


def test_search_batch_answers_each_row_of_a_matrix(client: Client, items: str) -> None:
    queries = DATA[[3, 10, 20]]
    results = client.search_batch(items, queries, k=3)
    assert len(results) == 3
    for query, hits in zip(queries, results, strict=True):
        assert [h.id for h in hits] == exact_neighbours(query, 3)


def test_search_batch_by_ids_with_a_filter(client: Client, items: str) -> None:
    results = client.search_batch(items, ids=[2, 3], k=2, filter={"even": True})
    assert [len(hits) for hits in results] == [2, 2]
    assert all(h.id % 2 == 0 for hits in results for h in hits)
    assert 2 not in [h.id for h in results[0]]


def test_search_batch_over_the_server_limit_raises_request_too_large(
    client: Client, items: str
) -> None:
    too_many = np.repeat(DATA[:1], LIMITS["max_queries_per_batch"] + 1, axis=0)
    with pytest.raises(RequestTooLarge):
        client.search_batch(items, too_many)
    with pytest.raises(ValueError, match="exactly one of vectors, texts, images or ids"):
        client.search_batch(items)


def test_recommend_by_ids_and_vectors(client: Client, items: str) -> None:
    hits = client.recommend(items, positive=[4, 6], negative=[40], k=5)
    assert len(hits) == 5
    assert not {4, 6, 40} & {h.id for h in hits}  # examples given by id are left out
    by_vector = client.recommend(items, positive=[DATA[4]], k=1)
    assert by_vector[0].id == 4  # a vector example is not a stored point: 4 may match
    best = client.recommend(items, [4, DATA[6]], strategy="best_score", k=3, filter={"even": False})
    assert all(h.id % 2 == 1 for h in best)
    with pytest.raises(PointNotFound):
        client.recommend(items, positive=[12345])
