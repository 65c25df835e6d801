"""Hybrid retrieval over real HTTP: full-text declaration and progress, /query with
fusion, filters and explain, the hybrid shortcut on search, and query text that is never
a 500 however odd."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.corpora import FTS5_ODD_WORDS
from tests.support.cross_encoder import write_tiny_cross_encoder
from tests.support.server import Server

TITLES = ["red running shoes", "blue running shoes", "red wool hat", "green trail boots"]


def setup_shop(http: httpx.Client) -> None:
    created = http.put(
        "/collections/shop",
        json={
            "dim": 4,
            "full_text": {"fields": [{"path": "title", "weight": 2}], "tokenizer": "porter"},
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["full_text"]["state"] == "ready"
    vectors = np.eye(4, dtype=np.float32).tolist()
    points = [
        {"id": i, "vector": v, "payload": {"title": t, "stock": i % 2 == 0}}
        for i, (t, v) in enumerate(zip(TITLES, vectors, strict=True))
    ]
    assert http.put("/collections/shop/points", json={"points": points}).status_code == 200


def test_query_fuses_dense_and_lexical_stages_with_filters_and_explain(http: httpx.Client) -> None:
    setup_shop(http)
    body = {
        "prefetch": [
            {"dense": {"vector": [0, 0, 0, 1]}, "limit": 2},
            {"lexical": {"text": "run shoe"}, "filter": {"stock": True}},
        ],
        "fusion": {"method": "rrf", "k": 60},
        "limit": 3,
        "explain": True,
    }
    reply = http.post("/collections/shop/query", json=body)
    assert reply.status_code == 200, reply.text
    hits = reply.json()["hits"]
    assert {h["id"] for h in hits} == {3, 0, 2}  # 3 by vector; 0 by stemmed words (in stock)
    assert hits[0]["explain"]["stages"][0]["kind"] == "dense"
    assert "full_text" not in reply.json()


def test_hybrid_shortcut_on_search(http: httpx.Client) -> None:
    setup_shop(http)
    reply = http.post(
        "/collections/shop/search",
        json={"vector": [0, 0, 1, 0], "k": 2, "hybrid": {"text": "wool", "alpha": 0.5}},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["hits"][0]["id"] == 2
    missing = http.post("/collections/shop/search", json={"vector": [0, 0, 1, 0], "hybrid": {}})
    assert (missing.status_code, missing.json()["error"]) == (422, "InvalidQuery")


def test_full_text_declared_later_reports_progress(http: httpx.Client) -> None:
    assert http.put("/collections/late", json={"dim": 2}).status_code == 201
    points = [{"id": i, "vector": [1, i], "payload": {"t": f"w{i % 3}"}} for i in range(300)]
    http.put("/collections/late/points", json={"points": points})
    lexical = {"prefetch": [{"lexical": {"text": "w1"}}], "limit": 500}
    refused = http.post("/collections/late/query", json=lexical)
    assert (refused.status_code, refused.json()["error"]) == (409, "FullTextNotDeclared")
    declared = http.put("/collections/late/full_text", json={"fields": ["t"]})
    assert declared.status_code == 200, declared.text
    assert declared.json()["full_text"]["fields"] == [{"path": "t", "weight": 1.0}]
    deadline = time.monotonic() + 10  # the points already there are indexed in the background
    while (info := http.get("/collections/late").json()["full_text"])["state"] != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert info == {
        "fields": [{"path": "t", "weight": 1.0}],
        "tokenizer": "unicode61",
        "state": "ready",
        "indexed": 300,
        "total": 300,
    }
    assert len(http.post("/collections/late/query", json=lexical).json()["hits"]) == 100
    assert http.delete("/collections/late/full_text").json()["full_text"] is None


def test_bad_plans_and_declarations_are_422(http: httpx.Client) -> None:
    setup_shop(http)
    for body in (
        {"prefetch": []},
        {"prefetch": [{"lexical": {"text": "x", "match": "regex"}}]},
        {"prefetch": [{"lexical": {"text": "(x", "match": "fts5"}}]},
        {"prefetch": [{"lexical": {"text": "x"}}], "rerank": {"cross_encoder": {"model": "none"}}},
    ):
        reply = http.post("/collections/shop/query", json=body)
        assert reply.status_code == 422, (body, reply.text)
    bad = http.put("/collections/shop/full_text", json={"fields": ["$bad"]})
    assert (bad.status_code, bad.json()["error"]) == (422, "InvalidFullText")


ODD_WORDS = st.sampled_from(FTS5_ODD_WORDS)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.one_of(st.text(max_size=100), st.lists(ODD_WORDS, max_size=20).map(" ".join)),
    match=st.sampled_from(["any", "all", "phrase", "prefix"]),
)
def test_no_query_text_is_a_500(http: httpx.Client, text: str, match: str) -> None:
    if http.get("/collections/shop").status_code == 404:
        setup_shop(http)
    reply = http.post(
        "/collections/shop/query", json={"prefetch": [{"lexical": {"text": text, "match": match}}]}
    )
    assert reply.status_code == 200, reply.text


def test_a_100kb_query_text_is_answered(http: httpx.Client) -> None:
    setup_shop(http)
    reply = http.post(
        "/collections/shop/query", json={"prefetch": [{"lexical": {"text": "hat " * 25_000}}]}
    )
    assert reply.status_code == 200, reply.text
    assert [h["id"] for h in reply.json()["hits"]] == [2]


def test_a_cross_encoder_from_the_servers_allowlist_reranks(tmp_path: Path) -> None:
    folder = write_tiny_cross_encoder(tmp_path / "tiny-ce")
    rerankers = json.dumps([{"name": "tiny", "source": str(folder), "device": "cpu"}])
    with (
        Server(tmp_path / "data", env={"VECSERVE_RERANKERS": rerankers}) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        setup_shop(http)
        body = {
            "prefetch": [{"lexical": {"text": "red shoes boots hat"}}],
            "rerank": {"cross_encoder": {"model": "tiny", "field": "title"}},
            "explain": True,
        }
        reply = http.post("/collections/shop/query", json=body)
        assert reply.status_code == 200, reply.text
        hits = reply.json()["hits"]
        assert [h["score"] for h in hits] == [h["explain"]["rerank"] for h in hits]
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        other = {**body, "rerank": {"cross_encoder": {"model": str(folder)}}}
        refused = http.post("/collections/shop/query", json=other)
        assert (refused.status_code, refused.json()["error"]) == (422, "InvalidQuery")
