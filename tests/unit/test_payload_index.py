"""Payload field indexes: declared fields answer the filters on them exactly as the
payloads do, stay right through writes, reopenings and snapshots, and spare a filter's
first search from reading every payload. (``test_filters.py`` checks their answers
against a reference of the filter language on random payloads and filters.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import Collection, Engine
from indexer.errors import InvalidPayloadIndex
from indexer.field_index import reached
from indexer.filters import compile_filter
from indexer.payload_index import PayloadIndexes

FIELDS = {"color": "keyword", "price": "number", "tags": "keyword", "meta.size": "number"}
FILTERS: list[dict[str, Any]] = [
    {"color": "red"},
    {"color": {"$in": ["red", "blue"]}},
    {"color": {"$ne": "red"}},
    {"tags": "a"},
    {"tags": {"$nin": ["a", "b"]}},
    {"price": {"$gte": 10, "$lt": 40.5}},
    {"price": {"$not": {"$gt": 50}}},
    {"meta.size": {"$lte": 3}},
    {"$or": [{"color": "green"}, {"price": {"$lt": 5}}]},
    {"$not": {"tags": {"$in": ["c"]}}},
    {"$and": [{"color": {"$in": []}}, {"price": 1}]},
    {"in_stock": True},  # not indexed: the payloads answer
    {"color": {"$exists": True}},
    {"tags": {"$exists": False}},
    {"meta.size": {"$exists": True}},
    {"color": None},
    {"tags": {"$in": [None, "c"]}},
    {"meta.size": {"$ne": None}},
    {"color": {"$gt": "blue"}},
    {"color": {"$gte": "blue", "$lt": "red"}},
    {"$not": {"color": {"$lte": "green"}}},
]
# What a payload index answers alone: every condition on indexed fields.
INDEXED = [spec for spec in FILTERS if "in_stock" not in spec]


def payload(i: int) -> dict[str, Any]:
    if i % 11 == 0:
        return {"color": 5, "price": "cheap"}  # values of other types than indexed
    return {
        "color": ["red", "blue", "green"][i % 3],
        "price": i % 60 + 0.5 * (i % 2),
        "tags": [["a"], ["a", "b"], ["c"], []][i % 4],
        "meta": [{"size": i % 7}, {"size": 9}] if i % 5 else {"size": i % 7},
        "in_stock": i % 2 == 0,
    }


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)


def from_payloads(col: Collection, spec: dict[str, Any]) -> np.ndarray:
    compiled = compile_filter(spec)
    return col.store.select_labels(compiled.where, compiled.params)


def assert_agree(col: Collection) -> None:
    for spec in FILTERS:
        expected = from_payloads(col, spec)
        assert np.array_equal(col._reader.allowed(spec).labels, expected), spec
        assert col.count(spec) == len(expected), spec


def test_paths_reach_values_as_filters_do() -> None:
    doc = {"a": [{"b": 1}, {"b": [2, [3]]}, 4, [{"b": 5}]], "c": [[1], 2], "d": {"0": "x"}}
    assert list(reached(doc, ("a", "b"))) == [1, 2]
    assert list(reached(doc, ("c",))) == [2]  # nested arrays match nothing
    assert list(reached(doc, ("c", "0"))) == []  # an array taken by index is not looked into
    assert list(reached(doc, ("c", "1"))) == [2]
    assert list(reached(doc, ("d", "0"))) == ["x"]
    assert list(reached(doc, ("a", "2"))) == [4]
    assert list(reached(doc, ("z",))) == []


def test_conditions_an_index_cannot_tell_are_left_to_the_payloads() -> None:
    indexes = PayloadIndexes(np.empty(0, np.int64))
    indexes.declare({"k": "keyword", "n": "number"})
    indexes.upserted(np.array([1, 2]), [{"k": "x", "n": 2**60}, {"k": 3, "n": 1}], np.empty(0))
    assert indexes.select({"k": "x"}) is not None
    assert indexes.select({"k": 3}) is None  # a number, in a keyword index
    assert indexes.select({"k": {"$gt": 2}}) is None
    assert indexes.select({"n": {"$gt": "a"}}) is None  # a string, in a number index
    assert indexes.select({"n": 1}) is None  # the field holds an integer past 2**53
    assert indexes.select({"other": 1}) is None
    assert indexes.select({"$or": [{"k": "x"}, {"other": 1}]}) is None


def test_indexed_filters_agree_with_the_payloads_through_writes(engine: Engine) -> None:
    col = engine.create_collection("items", dim=4, payload_indexes=FIELDS)
    col.upsert(list(range(300)), vectors(300), [payload(i) for i in range(300)])
    assert_agree(col)
    # Replacements, deletes by id and by filter (on indexed fields and not).
    col.upsert(list(range(0, 300, 7)), vectors(43, 1), [payload(i + 1) for i in range(0, 300, 7)])
    col.delete(list(range(5, 300, 13)))
    assert col.delete(filter={"color": "green", "price": {"$lt": 20}}) > 0
    assert col.delete(filter={"in_stock": True, "tags": "c"}) > 0
    assert_agree(col)
    hits = col.search(vectors(1, 2), k=300, filter={"tags": "a"}, with_payload=True)[0]
    assert hits
    assert all("a" in h.payload["tags"] for h in hits)


def test_declarations_survive_reopening_and_snapshots(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", background=False) as engine:
        col = engine.create_collection("items", dim=4)
        col.upsert(list(range(200)), vectors(200), [payload(i) for i in range(200)])
        col.create_payload_index("color", "keyword")
        col.create_payload_index("price", "number")
        col.create_payload_index("price", "keyword")  # another type replaces it
        col.create_payload_index("tags", "keyword")
        col.drop_payload_index("tags")
        col.drop_payload_index("never-declared")
        info = engine.snapshot("items")
    with Engine(tmp_path / "data", background=False) as engine:
        col = engine.get_collection("items")
        assert col.payload_fields == {"color": "keyword", "price": "keyword"}
        assert col.payload_indexes["color"] == {
            "type": "keyword",
            "state": "ready",
            "indexed": 200,
            "total": 200,
        }
        assert_agree(col)
        copy = engine.restore_snapshot("copy", info.path, sha256=info.sha256)
        assert copy.payload_fields == {"color": "keyword", "price": "keyword"}
        assert_agree(copy)


def test_bad_declarations_are_refused_and_change_nothing(engine: Engine) -> None:
    col = engine.create_collection("items", dim=4, payload_indexes={"color": "keyword"})
    for field, kind in [("$color", "keyword"), ("a..b", "number"), ("color", "text")]:
        with pytest.raises(InvalidPayloadIndex):
            col.create_payload_index(field, kind)  # type: ignore[arg-type]
    with pytest.raises(InvalidPayloadIndex):
        engine.create_collection("other", dim=4, payload_indexes={"x": "date"})
    assert "other" not in engine.list_collections()
    assert col.payload_fields == {"color": "keyword"}


def test_a_new_filter_on_indexed_fields_reads_no_payload(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    col = engine.create_collection("items", dim=4, payload_indexes=FIELDS)
    col.upsert(list(range(100)), vectors(100), [payload(i) for i in range(100)])
    expected = from_payloads(col, {"color": "blue", "price": {"$gt": 30}})

    def no_scan(*args: Any) -> np.ndarray:
        raise AssertionError("the payloads were read")

    monkeypatch.setattr(col.store, "select_labels", no_scan)
    hits = col.search(vectors(1), k=100, filter={"color": "blue", "price": {"$gt": 30}})
    assert sorted(col._point_ids.label(h.id) for h in hits[0]) == expected.tolist()
    assert col.delete(filter={"color": "blue", "price": {"$gt": 30}}) == len(expected)


def test_existence_nulls_and_string_ranges_on_indexed_fields_read_no_payload(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    col = engine.create_collection("items", dim=4, payload_indexes=FIELDS)
    extra = [{"color": None}, {"color": ["x", None]}, {"tags": None, "meta": 4}, {}]
    payloads = [payload(i) for i in range(100)] + extra
    col.upsert(list(range(104)), vectors(104), payloads)
    expected = [from_payloads(col, spec) for spec in INDEXED]

    def no_scan(*args: Any) -> np.ndarray:
        raise AssertionError("the payloads were read")

    monkeypatch.setattr(col.store, "select_labels", no_scan)
    for spec, labels in zip(INDEXED, expected, strict=True):
        assert np.array_equal(col._reader.allowed(spec).labels, labels), spec


@pytest.mark.parametrize("limit", [1, 7, 500])
def test_filtered_scroll_pages_come_from_the_indexes_in_key_order(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """Pages of many matches (met along the store's key index) and of few (sorted in
    memory) are those that the payloads give, page by page, with no SQL filter run."""
    ids: list[Any] = [*range(250), *(f"s{i}" for i in range(50))]  # keys of both kinds
    payloads = [payload(i) for i in range(300)]
    col = engine.create_collection("items", dim=4, payload_indexes=FIELDS)
    plain = engine.create_collection("plain", dim=4)  # the payloads answer its filters
    for c in (col, plain):
        c.upsert(ids, vectors(300), payloads)
    specs = [{"color": "red"}, {"price": {"$lt": 2}}, {"color": "purple"}]
    expected = [[p.id for p in scrolled(plain, 1000, spec)] for spec in specs]
    assert len(expected[0]) > 50 > len(expected[1]) > 0 == len(expected[2])
    monkeypatch.setattr(col.store, "page", None)  # the SQL path is not taken
    for spec, want in zip(specs, expected, strict=True):
        assert [p.id for p in scrolled(col, limit, spec)] == want
    page, _ = col.scroll(limit=limit, filter=specs[0], with_vectors=True)
    by_id = dict(zip(ids, payloads, strict=True))
    assert all(p.vector is not None and p.payload == by_id[p.id] for p in page)


def scrolled(col: Collection, limit: int, spec: dict[str, Any]) -> list[Any]:
    """Every page of a filtered scroll, joined."""
    points: list[Any] = []
    cursor = None
    while True:
        page, cursor = col.scroll(limit=limit, cursor=cursor, filter=spec or None)
        points += page
        if cursor is None:
            return points


def test_string_ranges_see_the_values_written_since_the_vocabulary_was_sorted() -> None:
    indexes = PayloadIndexes(np.empty(0, np.int64))
    indexes.declare({"k": "keyword"})
    rng = np.random.default_rng(0)
    words: list[str] = []
    label = 0
    for batch in (200, 10, 50, 400):  # sorted, then a few newer, then enough to sort again
        new = ["".join(rng.choice(list("abcé"), 3)) + str(i) for i in range(label, label + batch)]
        words += new
        labels = np.arange(label, label + batch)
        indexes.upserted(labels, [{"k": [w, True]} for w in new], np.empty(0, np.int64))
        label += batch
        for op, test in (("$gt", str.__gt__), ("$lte", str.__le__)):
            for bound in ("b", "bé", "c1", ""):
                found = indexes.select({"k": {op: bound}})
                assert found is not None
                assert found.tolist() == [i for i, w in enumerate(words) if test(w, bound)]


def test_a_write_brings_cached_filters_up_to_date_without_reading_every_payload(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    col = engine.create_collection("items", dim=4)  # no payload indexes: the SQL path
    col.upsert(list(range(100)), vectors(100), [payload(i) for i in range(100)])
    spec = {"color": "red"}
    before = col.count(spec)
    queries: list[str] = []
    select = col.store.select_labels
    monkeypatch.setattr(
        col.store,
        "select_labels",
        lambda where, params: queries.append(where) or select(where, params),
    )
    col.upsert([1000, 1001], vectors(2), [{"color": "red"}, {"color": "blue"}])
    col.delete([i for i in range(100) if payload(i).get("color") == "red"][:3])
    assert col.count(spec) == before + 1 - 3
    assert col.count(spec) == before - 2  # cached now: nothing read
    assert len(queries) == 1
    assert queries[0].endswith("AND label >= ?")
    monkeypatch.undo()
    assert col.count(spec) == len(from_payloads(col, spec))


def test_fields_declared_on_points_there_are_built_in_the_background(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", background=True) as engine:
        col = engine.create_collection("items", dim=4)
        n = 30_000
        col.upsert(list(range(n)), vectors(n), [payload(i) for i in range(n)])
        col.create_payload_index("color", "keyword")
        col.create_payload_index("price", "number")
        # Writes while the backfill runs: indexed with their write, never twice.
        for i in range(20):
            col.upsert([n + i, i], vectors(2, i), [payload(i + 1), payload(i + 2)])
        deadline = time.monotonic() + 60
        while any(f["state"] != "ready" for f in col.payload_indexes.values()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert col.payload_indexes["price"]["indexed"] == n + 20
        for spec in FILTERS[:2] + FILTERS[5:7]:
            assert np.array_equal(col._reader.allowed(spec).labels, from_payloads(col, spec))
