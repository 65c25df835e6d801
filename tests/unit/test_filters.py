"""Payload filters: the engine agrees with a brute-force reference of the documented semantics.

The reference below is written from the docstring of :mod:`indexer.filters` alone, in plain
Python over the payload dicts (it shares no code with the SQL compiler):

- Mongo-style; dotted paths reach into nested objects (never into arrays).
- A field holding an array matches an operator when any element matches it.
- Values compare only within their type: numbers with numbers (ints and floats alike),
  strings with strings by code point, booleans only by equality; ``True`` is not ``1``.
- ``$ne`` / ``$nin`` are the negations of ``$eq`` / ``$in``, so they match a missing field.
- ``{"f": None}`` matches a null or missing field; ``$exists`` is true for a null field.
- ``$and`` / ``$or`` take lists; ``$not`` takes a filter at the top level and an operator
  object on a field (the negation of those operators, so it matches a missing field too);
  several keys in one object all have to hold.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from indexer import Engine
from indexer.collection import Collection
from indexer.errors import InvalidFilter
from indexer.filters import compile_filter

DIM = 4
MAX_POINTS = 60
PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- the reference -------------------------------------------------------------------------

MISSING: Any = object()


def resolve(payload: dict[str, Any], field: str) -> Any:
    """The value at a dotted path, or MISSING; paths go through objects only."""
    value: Any = payload
    for segment in field.split("."):
        if not isinstance(value, dict) or segment not in value:
            return MISSING
        value = value[segment]
    return value


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def same_kind(x: Any, y: Any) -> bool:
    """Two scalars that can be compared with <, >: both numbers or both strings."""
    return (is_number(x) and is_number(y)) or (isinstance(x, str) and isinstance(y, str))


def scalar_equal(x: Any, y: Any) -> bool:
    if isinstance(y, bool) or isinstance(x, bool):
        return isinstance(x, bool) and isinstance(y, bool) and x == y
    return same_kind(x, y) and x == y


def any_element(value: Any, test: Callable[[Any], bool]) -> bool:
    """``test`` holds for the value, or for any of its elements when it is an array."""
    if value is MISSING:
        return False
    if isinstance(value, list):
        return any(test(e) for e in value)
    return test(value)


def equals(value: Any, wanted: Any) -> bool:
    if wanted is None:
        return value is MISSING or value is None
    return any_element(value, lambda x: scalar_equal(x, wanted))


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def operator_holds(value: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return equals(value, arg)
    if op == "$ne":
        return not equals(value, arg)
    if op == "$in":
        return any(equals(value, a) for a in arg)
    if op == "$nin":
        return not any(equals(value, a) for a in arg)
    if op == "$exists":
        return (value is not MISSING) == arg
    if op == "$not":
        return not condition_holds(value, arg)
    compare = COMPARE[op]
    return any_element(value, lambda x: same_kind(x, arg) and compare(x, arg))


def condition_holds(value: Any, condition: Any) -> bool:
    if not isinstance(condition, dict):
        return equals(value, condition)
    return all(operator_holds(value, op, arg) for op, arg in condition.items())


def matches(payload: dict[str, Any], spec: dict[str, Any]) -> bool:
    for key, value in spec.items():
        if key == "$and":
            ok = all(matches(payload, s) for s in value)
        elif key == "$or":
            ok = any(matches(payload, s) for s in value)
        elif key == "$not":
            ok = not matches(payload, value)
        else:
            ok = condition_holds(resolve(payload, key), value)
        if not ok:
            return False
    return True


CASES = [
    # (payload, filter, expected)
    ({"a": [1, "x", True]}, {"a": 1}, True),
    ({"a": [1, "x", True]}, {"a": "x"}, True),
    ({"a": [1, "x", True]}, {"a": True}, True),
    ({"a": [1, "x", True]}, {"a": 2}, False),
    ({"a": [1, "x", True]}, {"a": {"$gt": 0}}, True),
    ({"a": [1, "x", True]}, {"a": {"$ne": 1}}, False),
    ({"a": [1, "x", True]}, {"a": {"$nin": [7, 1]}}, False),
    ({"a": [1, "x", True]}, {"a": None}, False),
    ({"a": [None, 1]}, {"a": None}, False),  # see the report: null inside an array
    ({"a": []}, {"a": {"$exists": True}}, True),
    ({"s": "é"}, {"s": {"$gt": "z"}}, True),  # U+00E9 sorts after "z" by code point
    ({"s": "é"}, {"s": {"$lt": "z"}}, False),
    ({"b": 1}, {"b": 1.0}, True),
    ({"b": True}, {"b": 1}, False),
    ({"b": 1}, {"b": True}, False),
    ({"b": "1"}, {"b": 1}, False),
    ({"b": [False]}, {"b": {"$gt": 0}}, False),
    ({"n": {"x": None}}, {"n.x": None}, True),
    ({"n": {"x": None}}, {"n.x": {"$exists": True}}, True),
    ({"n": {"x": None}}, {"zz": None}, True),
    ({"n": {"x": None}}, {"zz": {"$exists": True}}, False),
    ({"n": {"x": None}}, {"zz": {"$ne": 1}}, True),
    ({"n": {"x": None}}, {"zz": {"$nin": [1]}}, True),
    ({"n": {"x": None}}, {"zz": {"$not": {"$gt": 3}}}, True),
    ({"n": [{"x": 1}]}, {"n.x": 1}, False),  # paths go through objects, not arrays
    ({"n": {"m": {"x": 2.5}}}, {"n.m.x": {"$gt": 2, "$lt": 3}}, True),
    ({"n": {"m": {"x": 2.5}}}, {"n.m": {"$exists": True}}, True),
    ({"a": 1}, {"$not": {"a": 1}}, False),
    ({"a": 1, "s": "é"}, {"$or": [{"a": 5}, {"s": "é"}], "a": {"$lte": 1}}, True),
    ({"a": 1, "s": "é"}, {"$or": [{"a": 5}, {"s": "é"}], "a": {"$lt": 1}}, False),
]


@pytest.mark.parametrize(("payload", "spec", "expected"), CASES)
def test_reference_on_hand_checked_cases(
    col: Collection, payload: dict[str, Any], spec: dict[str, Any], expected: bool
) -> None:
    """The reference, and the engine, on cases checked by hand against the docstring."""
    assert matches(payload, spec) is expected
    refill(col, [payload], seed=0)
    assert col.count(spec) == int(expected), show(spec)


# -- strategies ----------------------------------------------------------------------------

# Mostly a few common values, so that filters and payloads meet often; then wider ranges.
# "é" (U+00E9) sorts after every ASCII letter by code point. Quarters are exact in binary
# (and some equal ints); tenths exercise the parsing of decimals stored as JSON text.
COMMON = [None, True, False, -1, 0, 1, 2, 0.5, 1.0, 2.5, "", "a", "b", "ab", "é", "bé"]
strings = st.text(alphabet="abé", max_size=3)
ints = st.integers(-1000, 1000)
floats = st.one_of(
    st.integers(-8, 8).map(lambda i: i / 4), st.integers(-10_000, 10_000).map(lambda i: i / 10)
)
numbers = st.one_of(ints, floats)
common = st.sampled_from(COMMON)
scalars = st.one_of(common, common, common, st.none(), st.booleans(), numbers, strings)
comparables = st.one_of(
    common.filter(lambda v: v is not None and not isinstance(v, bool)), numbers, strings
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
nested = st.fixed_dictionaries(
    {},
    optional={
        "x": values,
        "y": values,
        "m": st.one_of(values, st.fixed_dictionaries({}, optional={"x": values})),
    },
)
payloads = st.fixed_dictionaries(
    {}, optional={"a": values, "b": values, "n": st.one_of(values, nested)}
)
FIELDS = ["a", "b", "n", "n.x", "n.y", "n.m", "n.m.x", "z"]  # "z" is never present
value_lists = st.lists(scalars, min_size=1, max_size=4)
OPERAND: dict[str, st.SearchStrategy[Any]] = {
    "$eq": scalars,
    "$ne": scalars,
    "$gt": comparables,
    "$gte": comparables,
    "$lt": comparables,
    "$lte": comparables,
    "$in": value_lists,
    "$nin": value_lists,
    "$exists": st.booleans(),
}


@st.composite
def operators(draw: st.DrawFn, depth: int = 1) -> dict[str, Any]:
    """An operator object for one field, e.g. {"$gte": 1, "$not": {"$in": ["a"]}}."""
    names = list(OPERAND) + (["$not"] if depth > 0 else [])
    ops: dict[str, Any] = {}
    for _ in range(draw(st.integers(1, 2))):
        op = draw(st.sampled_from(names))
        ops[op] = draw(operators(depth - 1)) if op == "$not" else draw(OPERAND[op])
    return ops


conditions = st.one_of(scalars, operators())
field_filters = st.dictionaries(st.sampled_from(FIELDS), conditions, min_size=1, max_size=2)


@st.composite
def filters(draw: st.DrawFn, depth: int = 3) -> dict[str, Any]:
    kinds = ["fields", "and", "or", "not", "mixed"] if depth > 0 else ["fields"]
    kind = draw(st.sampled_from(kinds))
    if kind == "fields":
        return draw(field_filters)
    sub = filters(depth - 1)
    if kind == "not":
        return {"$not": draw(sub)}
    if kind in ("and", "or"):
        return {f"${kind}": draw(st.lists(sub, min_size=1, max_size=3))}
    return {**draw(field_filters), "$or": draw(st.lists(sub, min_size=1, max_size=2))}


# -- the collection ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def col(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collection]:
    """One small flat l2 collection, refilled by every example."""
    with Engine(tmp_path_factory.mktemp("filters") / "data", background=False) as engine:
        yield engine.create_collection("filters", dim=DIM, metric="l2")


def refill(col: Collection, points: list[dict[str, Any]], seed: int) -> np.ndarray:
    col.delete(list(range(MAX_POINTS)))
    assert col.count() == 0
    vectors = np.random.default_rng(seed).standard_normal((len(points), DIM)).astype(np.float32)
    col.upsert(list(range(len(points))), vectors, points)
    return vectors


def show(spec: dict[str, Any]) -> str:
    compiled = compile_filter(spec)
    return f"filter {spec!r}\nSQL: {compiled.where}\nparams: {compiled.params!r}"


@PROPERTY_SETTINGS
@given(
    points=st.lists(payloads, min_size=30, max_size=MAX_POINTS),
    spec=filters(),
    seed=st.integers(0, 2**32 - 1),
)
def test_filter_matches_reference(
    col: Collection, points: list[dict[str, Any]], spec: dict[str, Any], seed: int
) -> None:
    refill(col, points, seed)
    expected = {i for i, p in enumerate(points) if matches(p, spec)}
    # Steer generation towards filters that match some points but not all.
    target(min(len(expected), len(points) - len(expected)) / len(points), label="mixed")

    def check(found: set[Any], via: str) -> None:
        if found != expected:
            extra = {i: points[i] for i in found - expected}
            missed = {i: points[i] for i in expected - found}
            pytest.fail(f"{via}: {show(spec)}\nunexpected: {extra}\nmissed: {missed}")

    count = col.count(spec)
    assert count == len(expected), f"count {count}, expected {len(expected)}: {show(spec)}"
    hits = col.search(np.zeros(DIM, np.float32), k=len(points), filter=spec, with_payload=False)
    check({h.id for h in hits[0]}, "search")
    assert len(hits[0]) == len(expected)
    page, cursor = col.scroll(limit=1000, filter=spec)
    assert cursor is None
    check({p.id for p in page}, "scroll")
    assert all(p.payload == points[p.id] for p in page)
    # A filtered delete removes exactly the matching points.
    assert col.delete(filter=spec) == len(expected)
    remaining, _ = col.scroll(limit=1000)
    assert {p.id for p in remaining} == set(range(len(points))) - expected


@PROPERTY_SETTINGS
@given(
    points=st.lists(payloads, min_size=1, max_size=MAX_POINTS),
    spec=filters(depth=1),
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 70),
)
def test_filtered_search_returns_true_top_k_for_exact_index(
    col: Collection, points: list[dict[str, Any]], spec: dict[str, Any], seed: int, k: int
) -> None:
    assert col.index_info["family"] == "flat"
    vectors = refill(col, points, seed)
    queries = np.random.default_rng(seed + 1).standard_normal((3, DIM)).astype(np.float32)
    allowed = np.array([i for i, p in enumerate(points) if matches(p, spec)], dtype=np.int64)
    distances = np.sqrt(((queries[:, None, :] - vectors[None, :, :]) ** 2).sum(-1))
    results = col.search(queries, k=k, filter=spec, with_payload=False)
    for row, hits in zip(distances, results, strict=True):
        want = min(k, len(allowed))
        assert len(hits) == want, show(spec)
        truth = allowed[np.argsort(row[allowed], kind="stable")][:want]
        got_ids = [h.id for h in hits]
        got_scores = np.array([h.score for h in hits])
        np.testing.assert_allclose(got_scores, row[truth], rtol=1e-4, atol=1e-4)
        # Each hit is a matching point at the distance it claims (robust to near-ties).
        assert set(got_ids) <= set(allowed.tolist())
        np.testing.assert_allclose(got_scores, row[got_ids], rtol=1e-4, atol=1e-4)
        gaps = np.diff(np.sort(row[allowed]))[: want + 1]
        if not len(gaps) or gaps.min() > 1e-4:
            assert got_ids == truth.tolist()


# -- approximate indexes -------------------------------------------------------------------

N_APPROX, DIM_APPROX = 10_000, 8


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "family"),
    [("hnsw", "hnsw"), ({"kind": "ivf_flat", "nlist": 16}, "ivf_flat")],
    ids=["hnsw", "ivf_flat"],
)
def test_filtered_search_returns_k_whenever_k_match(engine: Engine, spec: Any, family: str) -> None:
    rng = np.random.default_rng(7)
    col = engine.create_collection("approx", dim=DIM_APPROX, metric="l2", index=spec)
    vectors = rng.standard_normal((N_APPROX, DIM_APPROX)).astype(np.float32)
    rank = rng.permutation(N_APPROX)  # matching sets are scattered over the space
    col.upsert(
        list(range(N_APPROX)),
        vectors,
        [{"rank": int(r), "odd": bool(r % 2), "tag": ["t", str(r % 7)]} for r in rank],
    )
    col.optimize()
    assert col.index_info["family"] == family
    queries = np.concatenate(
        [rng.standard_normal((12, DIM_APPROX)), vectors[rng.choice(N_APPROX, 4)]]
    ).astype(np.float32)
    for m in (1, 5, 50, 500, 5000):
        low, high = m // 2, N_APPROX - (m - m // 2)
        selective = [
            ({"rank": {"$lt": m}}, rank < m),
            (
                {"$or": [{"rank": {"$lt": low}}, {"rank": {"$gte": high}}]},
                (rank < low) | (rank >= high),
            ),
            ({"rank": {"$not": {"$gte": m}}, "tag": "t", "odd": {"$in": [True, False]}}, rank < m),
        ]
        for spec_filter, mask in selective:
            allowed = set(np.flatnonzero(mask).tolist())
            assert col.count(spec_filter) == m
            for k in (1, 10, 100):
                results = col.search(queries, k=k, filter=spec_filter, with_payload=False)
                for hits in results:
                    ids = [h.id for h in hits]
                    assert len(ids) == min(k, m), (family, spec_filter, k)
                    assert len(set(ids)) == len(ids)
                    assert set(ids) <= allowed, (family, spec_filter, k)
                    scores = [h.score for h in hits]
                    assert scores == sorted(scores)


# -- invalid filters -----------------------------------------------------------------------


def nested_not(levels: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"a": 1}
    for _ in range(levels):
        spec = {"$not": spec}
    return spec


def nested_and(levels: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"a": 1}
    for _ in range(levels):
        spec = {"$and": [spec]}
    return spec


INVALID = [
    ({"a": {"$regex": "x"}}, "unknown operator '\\$regex'"),
    ({"$nor": [{"a": 1}]}, "unknown logical operator '\\$nor'"),
    ({"$nor": []}, "unknown logical operator"),
    ({}, "non-empty object"),
    ([{"a": 1}], "non-empty object"),
    ({"a": {}}, "at least one operator"),
    ({"a": {"$in": "x"}}, "\\$in takes a non-empty list"),
    ({"a": {"$nin": 3}}, "\\$nin takes a non-empty list"),
    ({"a": {"$in": []}}, "\\$in takes a non-empty list"),
    ({"a": {"$in": [[1]]}}, "use \\$in"),
    ({"a": [1, 2]}, "use \\$in"),
    ({"a": {"$eq": [1, 2]}}, "use \\$in"),
    ({"a": {"b": 1}}, "unknown operator 'b' \\(objects are matched field by field\\)"),
    ({"a": {"$eq": {"b": 1}}}, "takes a string, number, boolean or null"),
    ({"a": {"$exists": 1}}, "\\$exists takes true or false"),
    ({"a": {"$exists": "yes"}}, "\\$exists takes true or false"),
    ({"a": {"$gt": True}}, "\\$gt compares numbers or strings"),
    ({"a": {"$lte": None}}, "\\$lte compares numbers or strings"),
    ({"a": {"$lt": [1]}}, "use \\$in"),
    ({"a": {"$not": 3}}, "\\$not on a field takes an operator object"),
    ({"$not": 3}, "non-empty object"),
    (nested_not(20), "nests deeper than 16"),
    (nested_and(20), "nests deeper than 16"),
    ({"a": math.nan}, "finite number"),
    ({"a": {"$gt": math.inf}}, "finite number"),
    ({"a": {"$in": [1, -math.inf]}}, "finite number"),
    ({"a": 2**70}, "64-bit range"),
    ({'a"b': 1}, "invalid field name"),
    ({"a\\b": 1}, "invalid field name"),
    ({"a.$b": 1}, "invalid field name"),
    ({"$b": 1}, "unknown logical operator"),
    ({"a..b": 1}, "invalid field name"),
    ({"": 1}, "invalid field name"),
    ({"a" * 129: 1}, "invalid field name"),
    ({"$and": []}, "\\$and takes a non-empty list"),
    ({"$or": {"a": 1}}, "\\$or takes a non-empty list"),
    ({"$and": [{"a": 1}, {}]}, "non-empty object"),
    ({1: 1}, "filter keys are strings"),
]


@pytest.mark.parametrize(("spec", "message"), INVALID, ids=[repr(s)[:40] for s, _ in INVALID])
def test_invalid_filter_is_refused_with_a_reason(spec: Any, message: str) -> None:
    with pytest.raises(InvalidFilter, match=message):
        compile_filter(spec)


def test_deep_but_allowed_nesting_compiles() -> None:
    compile_filter(nested_not(15))
    compile_filter(nested_and(15))


def test_invalid_filter_changes_nothing(col: Collection) -> None:
    points = [{"a": i % 3, "n": {"x": str(i)}} for i in range(20)]
    refill(col, points, seed=0)
    before, _ = col.scroll(limit=1000, with_vectors=True)
    for spec, message in INVALID:
        with pytest.raises(InvalidFilter, match=message):
            col.delete(filter=spec)
        with pytest.raises(InvalidFilter, match=message):
            col.count(spec)
        with pytest.raises(InvalidFilter, match=message):
            col.search(np.zeros(DIM, np.float32), k=5, filter=spec)
        with pytest.raises(InvalidFilter, match=message):
            col.scroll(filter=spec)
    after, _ = col.scroll(limit=1000, with_vectors=True)
    assert col.count() == len(points)
    assert [(p.id, p.payload) for p in after] == [(p.id, p.payload) for p in before]
    for p, q in zip(before, after, strict=True):
        np.testing.assert_array_equal(p.vector, q.vector)
