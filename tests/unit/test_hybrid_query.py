"""The query pipeline over a real collection: lexical and dense stages, fusion, filters on
every stage, explain, MMR, a cross-encoder rerank, and full-text declared on a collection
that already has points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer import Engine
from indexer.collection import Collection
from indexer.errors import FullTextNotDeclared, InvalidFullText, InvalidQuery, PointNotFound
from indexer.query import RerankerConfig, RerankerRegistry
from tests.support.cross_encoder import write_tiny_cross_encoder

TITLES = [
    "red running shoes",
    "blue running shoes",
    "red wool hat",
    "green trail boots",
    "red leather boots",
    "blue denim jacket",
    "green wool scarf",
    "red shoes for kids",
]
DIM = 8


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


@pytest.fixture
def shop(engine: Engine) -> Collection:
    c = engine.create_collection(
        "shop", DIM, full_text={"fields": [{"path": "title", "weight": 2}, "tags"]}
    )
    c.upsert(
        list(range(len(TITLES))),
        vectors(len(TITLES)),
        [
            {"title": t, "in_stock": i % 2 == 0, "tags": ["sale"] if i < 3 else []}
            for i, t in enumerate(TITLES)
        ],
    )
    return c


def ids(result: object) -> list[object]:
    return [h.id for h in result.hits]  # type: ignore[attr-defined]


def test_lexical_search_ranks_by_bm25_and_honours_the_filter(shop: Collection) -> None:
    result = shop.query({"prefetch": [{"lexical": {"text": "red shoes"}}], "limit": 10})
    assert ids(result)[:2] in ([0, 7], [7, 0])  # both words; then the points with one
    assert set(ids(result)) == {0, 1, 2, 4, 7}
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    assert all(s > 0 for s in scores)
    filtered = shop.query(
        {"prefetch": [{"lexical": {"text": "red shoes"}, "filter": {"in_stock": True}}]}
    )
    assert set(ids(filtered)) == {0, 2, 4}


def test_match_modes_change_what_matches(shop: Collection) -> None:
    def lexical(text: str, match: str) -> set[object]:
        return set(ids(shop.query({"prefetch": [{"lexical": {"text": text, "match": match}}]})))

    assert lexical("red shoes", "all") == {0, 7}
    assert lexical("shoes red", "phrase") == set()
    assert lexical("red shoes", "phrase") == {7}
    assert lexical("bo", "prefix") == {3, 4}
    assert lexical("c0:wool NOT scarf", "fts5") == {2}
    assert lexical("wool NOT scarf", "any") == {2, 6}  # words, not syntax
    with pytest.raises(InvalidQuery):
        lexical("(wool", "fts5")


def test_hybrid_fusion_finds_points_of_both_stages_and_explains_them(shop: Collection) -> None:
    query_vector = vectors(len(TITLES))[5] + 0.01  # nearest: point 5, which has no "red"
    for method in ("rrf", "dbsf", "relative_score"):
        result = shop.query(
            {
                "prefetch": [
                    {"dense": {"vector": query_vector.tolist()}, "limit": 3},
                    {"lexical": {"text": "red"}},
                ],
                "fusion": {"method": method},
                "limit": 8,
                "explain": True,
            }
        )
        found = ids(result)
        assert 5 in found
        assert {0, 2, 4, 7} <= set(found)
        top = result.hits[0].explain
        assert top is not None
        assert [s["kind"] for s in top["stages"]] == ["dense", "lexical"]
        dense = next(h for h in result.hits if h.id == 5).explain
        assert dense is not None
        assert dense["stages"][0]["rank"] == 1
        assert "rank" not in dense["stages"][1]


def test_filters_hold_on_every_stage_and_k_results_come_whenever_k_points_match(
    shop: Collection,
) -> None:
    result = shop.query(
        {
            "prefetch": [
                {"dense": {"vector": vectors(1, 9)[0].tolist()}, "limit": 1},
                {"lexical": {"text": "blue"}, "limit": 1},
            ],
            "filter": {"in_stock": True},
            "limit": 4,
        }
    )
    assert len(result.hits) == 4  # four points are in stock: stage limits rise to the query's
    assert all(h.payload is not None and h.payload["in_stock"] for h in result.hits)


def test_offset_pages_through_the_fused_ranking(shop: Collection) -> None:
    plan = {
        "prefetch": [
            {"dense": {"vector": vectors(1, 3)[0].tolist()}},
            {"lexical": {"text": "red boots"}},
        ]
    }
    whole = ids(shop.query({**plan, "limit": 8}))
    assert ids(shop.query({**plan, "limit": 3, "offset": 2})) == whole[2:5]


def test_alpha_one_is_the_dense_ranking_and_zero_the_lexical_one(shop: Collection) -> None:
    vector = vectors(1, 4)[0].tolist()
    dense = ids(shop.query({"prefetch": [{"dense": {"vector": vector}}], "limit": 8}))
    lexical = ids(shop.query({"prefetch": [{"lexical": {"text": "red boots"}}], "limit": 8}))
    both = [{"dense": {"vector": vector}}, {"lexical": {"text": "red boots"}}]
    fused = {
        alpha: ids(
            shop.query(
                {
                    "prefetch": both,
                    "fusion": {"method": "relative_score", "alpha": alpha},
                    "limit": 8,
                }
            )
        )
        for alpha in (0.0, 1.0)
    }
    assert fused[1.0] == dense
    # Min-max puts the lowest lexical score at 0, level with points the stage did not find.
    assert fused[0.0][:2] == lexical[:2]


def test_a_dense_stage_by_point_id_leaves_the_point_out(shop: Collection) -> None:
    result = shop.query({"prefetch": [{"dense": {"point_id": 3}}], "limit": 7})
    assert 3 not in ids(result)
    assert len(result.hits) == 7
    with pytest.raises(PointNotFound):
        shop.query({"prefetch": [{"dense": {"point_id": 99}}]})


def test_mmr_puts_a_different_item_before_near_duplicates(engine: Engine) -> None:
    c = engine.create_collection("catalog", 2)
    c.upsert([1, 2, 3, 4], [[1, 0], [1, 0.01], [1, 0.02], [0.7, 0.7]])
    plain = ids(c.query({"prefetch": [{"dense": {"vector": [1, 0.1]}}], "limit": 2}))
    diverse = ids(
        c.query(
            {
                "prefetch": [{"dense": {"vector": [1, 0.1]}}],
                "rerank": {"mmr": {"lambda": 0.5}},
                "limit": 2,
            }
        )
    )
    assert plain[1] in (1, 2, 3)
    assert diverse[1] == 4


def test_full_text_declared_on_a_collection_with_points_is_indexed_by_optimize(
    engine: Engine,
) -> None:
    c = engine.create_collection("later", DIM)
    c.upsert(
        list(range(5000)),
        vectors(5000),
        [{"title": f"item {i} {'odd' if i % 2 else 'even'}"} for i in range(5000)],
    )
    with pytest.raises(FullTextNotDeclared):
        c.query({"prefetch": [{"lexical": {"text": "odd"}}]})
    c.set_full_text(["title"])
    assert c.full_text is not None
    assert (c.full_text["state"], c.full_text["indexed"], c.full_text["total"]) == (
        "indexing",
        0,
        5000,
    )
    c.upsert([9999], vectors(1), [{"title": "fresh odd"}])
    partial = c.query({"prefetch": [{"lexical": {"text": "odd"}}], "limit": 100})
    assert ids(partial) == [9999]
    assert partial.full_text_partial == {"indexed": 1, "total": 5001}
    c.optimize()
    assert c.full_text["state"] == "ready"  # type: ignore[index]
    done = c.query({"prefetch": [{"lexical": {"text": "odd"}}], "limit": 10_000})
    assert len(done.hits) == 2501
    assert done.full_text_partial is None


def test_background_indexing_finishes_and_survives_reopening(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", background=True) as engine:
        c = engine.create_collection("bg", DIM)
        c.upsert(list(range(4500)), vectors(4500), [{"title": f"word{i % 7}"} for i in range(4500)])
        c.set_full_text(["title"])
    with Engine(tmp_path / "data", background=False) as engine:
        c = engine.get_collection("bg")
        c.optimize()
        assert c.full_text["state"] == "ready"  # type: ignore[index]
        assert (
            len(c.query({"prefetch": [{"lexical": {"text": "word3"}}], "limit": 10_000}).hits)
            == 643
        )


def test_an_invalid_plan_or_declaration_is_refused(shop: Collection) -> None:
    for plan in (
        {"prefetch": []},
        {"prefetch": [{"dense": {"vector": [1.0] * DIM}, "lexical": {"text": "x"}}]},
        {"prefetch": [{"dense": {}}]},
        {"prefetch": [{"lexical": {"text": "x"}}], "fusion": {"method": "max"}},
        {"prefetch": [{"lexical": {"text": "x"}}], "rerank": {}},
    ):
        with pytest.raises(InvalidQuery):
            shop.query(plan)
    with pytest.raises(InvalidFullText):
        shop.set_full_text({"fields": ["title"], "tokenizer": "icu"})


def test_a_cross_encoder_reorders_the_candidates_by_its_scores(tmp_path: Path) -> None:
    folder = write_tiny_cross_encoder(tmp_path / "ce")
    rerankers = RerankerRegistry([RerankerConfig(name="tiny", source=str(folder), device="cpu")])
    with Engine(tmp_path / "data", background=False, rerankers=rerankers) as engine:
        c = engine.create_collection("docs", DIM, full_text=["title"])
        c.upsert(list(range(len(TITLES))), vectors(len(TITLES)), [{"title": t} for t in TITLES])
        plan = {
            "prefetch": [{"lexical": {"text": "red shoes boots"}}],
            "rerank": {"cross_encoder": {"model": "tiny", "field": "title"}},
            "limit": 5,
            "explain": True,
        }
        result = c.query(plan)
        candidates = c.query({"prefetch": plan["prefetch"], "limit": 50})
        expected = rerankers.get("tiny").score(
            "red shoes boots", [h.payload["title"] for h in candidates.hits]
        )  # type: ignore[index]
        order = np.argsort(-expected, kind="stable")[:5]
        assert ids(result) == [candidates.hits[i].id for i in order.tolist()]
        assert [h.score for h in result.hits] == pytest.approx(expected[order].tolist())
        with pytest.raises(InvalidQuery):
            c.query({**plan, "rerank": {"cross_encoder": {"model": "other"}}})


def test_opening_or_optimizing_without_a_backlog_writes_nothing(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", background=True) as engine:
        c = engine.create_collection("quiet", DIM, full_text=["title"])
        c.upsert([1], vectors(1), [{"title": "x"}])
        seq = c.store.seq
        c.optimize()
    with Engine(tmp_path / "data", background=True) as engine:
        assert engine.get_collection("quiet").store.seq == seq
