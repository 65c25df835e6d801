"""Hybrid retrieval through the SDK: full-text declaration, query with fusion, filters,
explain and MMR, the hybrid shortcut on search, and the typed errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vecserve_client import (
    Client,
    FullTextNotDeclared,
    InvalidFullText,
    InvalidQuery,
    InvalidRequest,
    QueryHit,
    QueryResult,
)

TITLES = ["red running shoes", "blue running shoes", "red wool hat", "green trail boots"]


@pytest.fixture
def shop(client: Client, name: str) -> str:
    info = client.create_collection(
        name, 4, full_text={"fields": [{"path": "title", "weight": 2}], "tokenizer": "porter"}
    )
    assert info.full_text is not None
    assert info.full_text["state"] == "ready"
    payloads = [{"title": t, "stock": i % 2 == 0} for i, t in enumerate(TITLES)]
    client.upsert(name, list(range(4)), np.eye(4, dtype=np.float32), payloads=payloads)
    return name


def test_query_fuses_dense_and_lexical_stages(client: Client, shop: str) -> None:
    result = client.query(
        shop,
        prefetch=[
            {"dense": {"vector": np.array([0, 0, 0, 1], dtype=np.float32)}, "limit": 2},
            {"lexical": {"text": "run shoe"}, "filter": {"stock": True}},
        ],
        fusion={"method": "rrf", "k": 60},
        limit=3,
        explain=True,
    )
    assert isinstance(result, QueryResult)
    assert {h.id for h in result.hits} == {3, 0, 2}
    assert all(isinstance(h, QueryHit) and h.explain is not None for h in result.hits)
    assert result.full_text is None


def test_query_with_mmr_and_offset_pages(client: Client, shop: str) -> None:
    plan = [{"lexical": {"text": "red shoes hat"}}]
    whole = [h.id for h in client.query(shop, prefetch=plan, limit=4).hits]
    assert [h.id for h in client.query(shop, prefetch=plan, limit=2, offset=1).hits] == whole[1:3]
    diverse = client.query(shop, prefetch=plan, rerank={"mmr": {"lambda": 0.5}}, limit=3)
    assert len(diverse.hits) == 3


def test_hybrid_search_and_full_text_declared_later(client: Client, name: str) -> None:
    client.create_collection(name, 2)
    client.upsert(name, [1, 2], [[1, 0], [0, 1]], payloads=[{"t": "apple"}, {"t": "pear"}])
    with pytest.raises(FullTextNotDeclared):
        client.search(name, [1, 0], hybrid={"text": "pear"})
    client.set_full_text(name, ["t"])
    deadline = time.monotonic() + 10  # the points already there are indexed in the background
    while client.get_collection(name).full_text["state"] != "ready":  # type: ignore[index]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    hits = client.search(name, [1, 0], k=2, hybrid={"text": "pear", "alpha": 0.2})
    assert [h.id for h in hits] == [2, 1]
    assert client.drop_full_text(name).full_text is None


def test_bad_plans_and_declarations_raise_typed_errors(client: Client, shop: str) -> None:
    with pytest.raises(InvalidQuery):
        client.query(shop, prefetch=[{"lexical": {"text": "(x", "match": "fts5"}}])
    with pytest.raises(InvalidRequest):  # the body does not match the API's schema
        client.query(shop, prefetch=[])
    with pytest.raises(InvalidFullText):
        client.set_full_text(shop, ["$bad"])
