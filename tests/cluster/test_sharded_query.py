"""Multi-stage and hybrid queries through the router answer as one engine holding the same
points: exactly with one shard; with several, dense stages exactly and lexical ones as far
as the shards' BM25 statistics agree (see service/cluster/query.py).

Shards are real engines in folders of their own, reached in-process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indexer import Engine
from indexer.errors import (
    FullTextNotDeclared,
    InvalidQuery,
    PointNotFound,
    ShardUnavailable,
)
from indexer.points import encode_id
from indexer.query import QueryResult
from service.app import create_app
from service.cluster.fanout import shard_of
from service.cluster.shard import ShardServer
from service.cluster.sharded import ShardedEngine
from service.settings import Settings
from tests.cluster.conftest import LocalLink

DIM = 8
N = 3000
WORDS = [f"w{i}" for i in range(300)]


def _cluster(root: Path, shards: int) -> tuple[ShardedEngine, list[LocalLink]]:
    links = [
        LocalLink(f"shard-{i}", ShardServer(str(root / f"shard-{i}"), [], "cpu"))
        for i in range(shards)
    ]
    return ShardedEngine(links, retry_s=0.2), links


def _load(engine: Any, name: str, ids: list[Any], vectors: np.ndarray, texts: list[str]) -> None:
    collection = engine.create_collection(name, DIM, "cosine", "flat", full_text=["text"])
    payloads = [{"text": t, "group": i % 4} for i, t in enumerate(texts)]
    collection.upsert(ids, vectors, payloads)


@pytest.fixture(scope="module")
def corpus() -> tuple[list[Any], np.ndarray, list[str]]:
    """Texts of Zipf-distributed words, so that words are common and rare as in prose."""
    rng = np.random.default_rng(3)
    weights = 1 / np.arange(1, len(WORDS) + 1)
    texts = [
        " ".join(rng.choice(WORDS, size=rng.integers(4, 30), p=weights / weights.sum()))
        for _ in range(N)
    ]
    ids: list[Any] = [i if i % 2 else f"doc-{i}" for i in range(N)]
    return ids, rng.standard_normal((N, DIM)).astype(np.float32), texts


@pytest.fixture(scope="module")
def engines(
    tmp_path_factory: pytest.TempPathFactory, corpus: tuple[list[Any], np.ndarray, list[str]]
) -> Iterator[dict[str, Any]]:
    """One engine, a cluster of one shard and one of three, holding the same points."""
    root = tmp_path_factory.mktemp("query")
    single = Engine(root / "single", device="cpu", background=False)
    one, one_links = _cluster(root / "one", 1)
    three, three_links = _cluster(root / "three", 3)
    for engine in (single, one, three):
        _load(engine, "docs", *corpus)
    yield {"single": single, "one": one, "three": three, "links": three_links}
    for engine in (single, one, three):
        engine.close()
    for link in [*one_links, *three_links]:
        link.server.close()


def _plan(query: np.ndarray, text: str, **options: Any) -> dict[str, Any]:
    return {
        "prefetch": [
            {"dense": {"vector": query.tolist()}, "limit": 40},
            {"lexical": {"text": text}, "limit": 40},
        ],
        "limit": 10,
        "explain": True,
        **options,
    }


def _ids(result: QueryResult) -> list[Any]:
    return [hit.id for hit in result.hits]


def _scores(result: QueryResult) -> np.ndarray:
    return np.array([hit.score for hit in result.hits])


def _queries() -> Iterator[tuple[np.ndarray, str]]:
    rng = np.random.default_rng(8)
    for text in ("w3 w40", "w17", "w120 w7 w2", "w250 w251"):
        yield rng.standard_normal(DIM).astype(np.float32), text


OPTIONS: list[dict[str, Any]] = [
    {"fusion": {"method": "rrf"}},
    {"fusion": {"method": "dbsf"}},
    {"fusion": {"method": "relative_score", "alpha": 0.3}},
    {"fusion": {"method": "rrf"}, "filter": {"group": 1}, "offset": 5},
    {"fusion": {"method": "rrf"}, "rerank": {"mmr": {"lambda": 0.6}, "candidates": 30}},
]


@pytest.mark.parametrize("options", OPTIONS)
def test_one_shard_answers_every_query_exactly_as_one_engine(
    engines: dict[str, Any], options: dict[str, Any]
) -> None:
    for query, text in _queries():
        plan = _plan(query, text, **options)
        want = engines["single"].get_collection("docs").query(plan)
        got = engines["one"].get_collection("docs").query(plan)
        assert _ids(got) == _ids(want)
        np.testing.assert_allclose(_scores(got), _scores(want), rtol=1e-6)
        assert [h.payload for h in got.hits] == [h.payload for h in want.hits]
        assert [h.explain for h in got.hits] == [h.explain for h in want.hits]
        assert got.missing_shards is None


def test_dense_stages_fuse_exactly_as_one_engine_over_three_shards(
    engines: dict[str, Any],
) -> None:
    rng = np.random.default_rng(4)
    for method in ("rrf", "dbsf", "relative_score"):
        a, b = rng.standard_normal((2, DIM))
        plan = {
            "prefetch": [
                {"dense": {"vector": a.tolist()}, "limit": 30},
                {"dense": {"vector": b.tolist()}, "filter": {"group": 2}, "limit": 30},
            ],
            "fusion": {"method": method},
            "limit": 15,
            "explain": True,
        }
        want = engines["single"].get_collection("docs").query(plan)
        got = engines["three"].get_collection("docs").query(plan)
        assert _ids(got) == _ids(want)
        np.testing.assert_allclose(_scores(got), _scores(want), rtol=1e-5)


def test_hybrid_queries_over_three_shards_mostly_find_one_engines_best_hits(
    engines: dict[str, Any],
) -> None:
    """Each shard scores BM25 with its own statistics (1000 points each here), which moves
    some lexical candidates; over 40 queries of 1 to 3 words, RRF kept one engine's best
    hit 37 times and 9.2 of its best 10 on average (the README's figures)."""
    rng = np.random.default_rng(9)
    firsts, overlaps = [], []
    for _ in range(40):
        text = " ".join(rng.choice(WORDS[:200], size=rng.integers(1, 4)))
        plan = _plan(rng.standard_normal(DIM).astype(np.float32), text, fusion={"method": "rrf"})
        want = _ids(engines["single"].get_collection("docs").query(plan))
        got = _ids(engines["three"].get_collection("docs").query(plan))
        firsts.append(got[0] == want[0])
        overlaps.append(len(set(got) & set(want)))
    assert np.mean(firsts) >= 0.85
    assert np.mean(overlaps) >= 8.5


def test_a_stage_by_point_id_leaves_the_point_out_as_one_engine_does(
    engines: dict[str, Any],
) -> None:
    for point in (7, "doc-10"):
        plan = {
            "prefetch": [{"dense": {"point_id": point}}, {"lexical": {"text": "w5"}}],
            "fusion": {"method": "rrf"},
            "limit": 10,
        }
        want = engines["single"].get_collection("docs").query(plan)
        got = engines["one"].get_collection("docs").query(plan)
        assert _ids(got) == _ids(want)
        dense_only = {"prefetch": [{"dense": {"point_id": point}}], "limit": 20}
        want = engines["single"].get_collection("docs").query(dense_only)
        got = engines["three"].get_collection("docs").query(dense_only)
        assert _ids(got) == _ids(want)
        assert point not in _ids(got)


def test_query_errors_keep_their_names_through_the_router(engines: dict[str, Any]) -> None:
    docs = engines["three"].get_collection("docs")
    with pytest.raises(PointNotFound):
        docs.query({"prefetch": [{"dense": {"point_id": "nope"}}]})
    with pytest.raises(InvalidQuery):
        docs.query({"prefetch": [{"lexical": {"text": "w1 AND (", "match": "fts5"}}]})
    with pytest.raises(InvalidQuery):
        docs.query(
            {
                "prefetch": [{"lexical": {"text": "w1"}}],
                "rerank": {"cross_encoder": {"model": "unknown"}},
            }
        )
    with pytest.raises(InvalidQuery):
        docs.query({"prefetch": []})
    plain = engines["three"].create_collection("plain", DIM, "l2", "flat")
    try:
        with pytest.raises(FullTextNotDeclared):
            plain.query({"prefetch": [{"lexical": {"text": "w1"}}]})
    finally:
        engines["three"].drop_collection("plain")


def test_a_shard_down_fails_a_query_naming_it_unless_partial_is_asked(
    engines: dict[str, Any],
) -> None:
    three, links = engines["three"], engines["links"]
    docs = three.get_collection("docs")
    query, text = next(_queries())
    plan = _plan(query, text, fusion={"method": "rrf"})
    live = ShardedEngine([links[0], links[2]], retry_s=0.2)
    links[1].down = True
    try:
        with pytest.raises(ShardUnavailable, match="shard-1"):
            docs.query(plan)
        got = docs.query({**plan, "partial": True})
        # The live shards' own answer, as a cluster of only them would give it.
        want = live.get_collection("docs").query(plan)
        assert got.missing_shards == ["shard-1"]
        assert _ids(got) == _ids(want)
        assert all(shard_of(encode_id(hit.id), 3) != 1 for hit in got.hits)
        links[0].down = links[2].down = True
        with pytest.raises(ShardUnavailable):
            docs.query({**plan, "partial": True})
    finally:
        for link in links:
            link.down = False
        live.close()
    assert docs.query({**plan, "partial": True}).missing_shards is None
    # One engine holds every point: it always answers in full.
    single = engines["single"].get_collection("docs")
    whole = single.query({**plan, "partial": True})
    assert whole.missing_shards is None
    assert _ids(whole) == _ids(single.query(plan))


def test_balanced_shards_give_one_engines_lexical_ranks_and_rrf_order(tmp_path: Path) -> None:
    """Each shard holds as many points, as many holding the word and the same total
    length: its BM25 statistics are the whole collection's shape, so the lexical stage
    ranks, and the fused RRF order, are one engine's."""
    shards = 2
    rng = np.random.default_rng(12)
    by_shard: list[list[int]] = [[] for _ in range(shards)]
    candidate = 0
    while min(len(ids) for ids in by_shard) < 200:
        by_shard[shard_of(encode_id(candidate), shards)].append(candidate)
        candidate += 1
    ids: list[Any] = []
    texts: list[str] = []
    counts = rng.permutation(np.arange(1, 17))  # distinct: no ties between shards
    for pair in range(200):  # one point of each pair on each shard, both 20 words long
        for shard in range(shards):
            occurrences = int(counts[2 * pair + shard]) if pair < 8 else 0
            filler = [f"f{rng.integers(1000)}" for _ in range(20 - occurrences)]
            texts.append(" ".join(["needle"] * occurrences + filler))
            ids.append(by_shard[shard][pair])
    vectors = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    single = Engine(tmp_path / "single", device="cpu", background=False)
    cluster, links = _cluster(tmp_path / "cluster", shards)
    try:
        for engine in (single, cluster):
            _load(engine, "balanced", ids, vectors, texts)
        for query in rng.standard_normal((5, DIM)).astype(np.float32):
            plan = _plan(query, "needle", fusion={"method": "rrf"}, limit=20)
            want = single.get_collection("balanced").query(plan)
            got = cluster.get_collection("balanced").query(plan)
            assert _ids(got) == _ids(want)
            np.testing.assert_allclose(_scores(got), _scores(want), rtol=1e-9)
            ranks = [[(s["kind"], s.get("rank")) for s in h.explain["stages"]] for h in got.hits]
            assert ranks == [
                [(s["kind"], s.get("rank")) for s in h.explain["stages"]] for h in want.hits
            ]
    finally:
        single.close()
        cluster.close()
        for link in links:
            link.server.close()


class CountingLink(LocalLink):
    """A shard whose calls are counted, by method."""

    def __init__(self, name: str, server: ShardServer) -> None:
        super().__init__(name, server)
        self.calls: list[str] = []

    def primary(self, method: str, *args: Any) -> Any:
        self.calls.append(args[1] if method == "collection_call" else method)
        return super().primary(method, *args)

    read = read_now = primary


def test_a_hybrid_query_with_payloads_takes_one_call_per_shard_and_the_same_hits(
    tmp_path: Path, engines: dict[str, Any], corpus: tuple[list[Any], np.ndarray, list[str]]
) -> None:
    links = [
        CountingLink(f"shard-{i}", ShardServer(str(tmp_path / f"shard-{i}"), [], "cpu"))
        for i in range(2)
    ]
    engine = ShardedEngine(links, retry_s=0.2)
    try:
        _load(engine, "docs", *corpus)
        collection = engine.get_collection("docs")
        for query, text in _queries():
            for link in links:
                link.calls.clear()
            plan = _plan(query, text, fusion={"method": "rrf"})
            got = collection.query(plan)
            assert [link.calls for link in links] == [["query_stages"]] * 2
            single = engines["single"].get_collection("docs")
            assert len(got.hits) == len(single.query(plan).hits)
            stored = single.get([h.id for h in got.hits])
            assert [h.payload for h in got.hits] == [p.payload for p in stored]
            # With vectors asked, the shards are asked for the hits' vectors as before.
            for link in links:
                link.calls.clear()
            collection.query({**plan, "with_vectors": True})
            assert ["query_stages", "get"] in [link.calls for link in links]
    finally:
        engine.close()
        for link in links:
            link.server.close()


class RestartingLink(LocalLink):
    """A shard that, once ``down``, Serve is restarting: :meth:`read` and :meth:`primary`
    wait for it (Serve queues the call until the new replica is up, CALL_TIMEOUT_S at
    most), which is counted here, and then fail as they would at the end of that wait;
    :meth:`read_now` gives up at once."""

    def __init__(self, name: str, server: ShardServer) -> None:
        super().__init__(name, server)
        self.waits = 0

    def primary(self, method: str, *args: Any) -> Any:
        self.waits += self.down
        return super().primary(method, *args)

    read = primary

    def read_now(self, method: str, *args: Any) -> Any:
        return super().primary(method, *args)


def test_a_partial_query_by_text_waits_for_no_restarting_shard_to_embed_it(
    tmp_path: Path,
) -> None:
    embedders = [{"name": "minilm", "kind": "sentence-transformers"}]
    live = LocalLink("shard-0", ShardServer(str(tmp_path / "shard-0"), embedders, "cpu"))
    restarting = RestartingLink("shard-1", ShardServer(str(tmp_path / "shard-1"), embedders, "cpu"))
    cluster = ShardedEngine([live, restarting], retry_s=0.2)
    try:
        docs = cluster.create_collection("docs", embedder="minilm")
        docs.upsert(list(range(8)), texts=[f"a note about topic {i}" for i in range(8)])
        restarting.down = True
        plan = {"prefetch": [{"dense": {"text": "topic 3"}}], "limit": 3, "partial": True}
        # Every shard takes its turn to embed a query: the restarting one's comes up too.
        for _ in range(2):
            got = docs.query(plan)
            assert got.missing_shards == ["shard-1"]
            assert got.hits
            assert all(shard_of(encode_id(hit.id), 2) == 0 for hit in got.hits)
        assert restarting.waits == 0
    finally:
        cluster.close()
        live.server.close()
        restarting.server.close()


def test_a_partial_query_tells_full_text_progress_without_waiting_for_a_restarting_shard(
    tmp_path: Path,
) -> None:
    live = LocalLink("shard-0", ShardServer(str(tmp_path / "shard-0"), [], "cpu"))
    restarting = RestartingLink("shard-1", ShardServer(str(tmp_path / "shard-1"), [], "cpu"))
    for link in (live, restarting):
        # Full-text indexing left to optimize(), so that it is under way when queried.
        link.server.engine.close()
        link.server.engine = Engine(link.server.engine.path, device="cpu", background=False)
    cluster = ShardedEngine([live, restarting], retry_s=0.2)
    try:
        docs = cluster.create_collection("docs", DIM, "cosine", "flat")
        ids = list(range(40))
        vectors = np.random.default_rng(5).standard_normal((40, DIM)).astype(np.float32)
        docs.upsert(ids, vectors, [{"text": f"w{i}"} for i in ids])
        docs.set_full_text(["text"])
        restarting.down = True
        plan = {"prefetch": [{"lexical": {"text": "w3"}}], "limit": 3, "partial": True}
        got = docs.query(plan)
        held = sum(shard_of(encode_id(i), 2) == 0 for i in ids)
        assert got.missing_shards == ["shard-1"]
        assert got.full_text_partial == {"indexed": 0, "total": held}
        assert restarting.waits == 0
    finally:
        cluster.close()
        live.server.close()
        restarting.server.close()


def test_a_search_through_the_router_answers_partially_only_when_asked(
    engines: dict[str, Any], tmp_path: Path
) -> None:
    """``POST /search`` on the router's app: with a shard down, a plain search is a 503
    naming it; with ``partial``, the live shards' best (the scores of a plain search),
    the missing shard named; a batch refuses ``partial``."""
    links = engines["links"]
    app = create_app(
        Settings(data_dir=tmp_path, device="cpu"),
        engine=lambda: cast(Engine, ShardedEngine(links, retry_s=0.2)),
    )
    live = ShardedEngine([links[0], links[2]], retry_s=0.2)
    query = np.random.default_rng(12).standard_normal(DIM).astype(np.float32)
    body = {"vector": query.tolist(), "k": 10, "filter": {"group": 1}}
    search = "/collections/docs/search"
    with TestClient(app) as client:
        whole = client.post(search, json=body).json()
        assert "missing_shards" not in whole
        in_full = client.post(search, json={**body, "partial": True}).json()
        assert "missing_shards" not in in_full
        assert [h["id"] for h in in_full["hits"]] == [h["id"] for h in whole["hits"]]
        links[1].down = True
        try:
            refused = client.post(search, json=body)
            assert (refused.status_code, refused.json()["error"]) == (503, "ShardUnavailable")
            assert "shard-1" in refused.json()["message"]
            got = client.post(search, json={**body, "partial": True})
            assert got.status_code == 200, got.text
            assert got.json()["missing_shards"] == ["shard-1"]
            want = live.get_collection("docs").search(query, 10, filter={"group": 1})[0]
            assert [h["id"] for h in got.json()["hits"]] == [h.id for h in want]
            np.testing.assert_allclose(
                [h["score"] for h in got.json()["hits"]], [h.score for h in want], rtol=1e-5
            )
            batch = client.post(f"{search}/batch", json={"searches": [{**body, "partial": True}]})
            assert (batch.status_code, batch.json()["error"]) == (422, "InvalidQuery")
        finally:
            links[1].down = False
            live.close()
