"""Payload filters: the engine agrees with a brute-force reference of the documented semantics.

The reference below is written from the docstring of :mod:`indexer.filters` alone, in plain
Python over the payload dicts (it shares no code with the SQL compiler):

- Mongo-style. A dotted path reaches values: an object leads on by key; an array leads on
  from each of its elements that is an object and, for a numeric key (no sign, no leading
  zero), also from its element at that index (on only from an object or an array; at the
  end, the element itself, an array there matching no value); other elements lead nowhere;
  a scalar, a null or a missing key before the end leads to a missing value.
- A field matches an operator when a value reached, or an element of one that is an array,
  matches it (one level: ``[[1]]`` does not match ``1``).
- Values compare only within their type: numbers with numbers (ints and floats alike),
  strings with strings by code point, booleans only by equality; ``True`` is not ``1``.
- ``{"f": None}`` matches a missing value, a null or an array holding a null; ``$exists``
  is true when a value is reached, null or ``[]`` included.
- ``$ne`` / ``$nin`` / ``$not`` are the negations of ``$eq`` / ``$in`` / the operators they
  take, so they match a missing field, and over arrays only when no element matches.
- ``$in: []`` matches nothing, ``$nin: []`` everything.
- ``$and`` / ``$or`` take lists; ``$not`` takes a filter at the top level and an operator
  object on a field; several keys in one object all have to hold.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from indexer import Engine
from indexer.collection import Collection
from indexer.errors import InvalidFilter
from indexer.filters import MAX_CONDITIONS, MAX_IN_VALUES, compile_filter

DIM = 4
MAX_POINTS = 60
PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- the reference -------------------------------------------------------------------------

MISSING: Any = object()
INDEX = re.compile(r"0|[1-9][0-9]*")


def reach(value: Any, path: list[str]) -> Iterator[Any]:
    """The values a path reaches from ``value``; MISSING where it ends at nothing."""
    if not path:
        yield value
    elif isinstance(value, dict):
        yield from reach(value.get(path[0], MISSING), path[1:])
    elif isinstance(value, list):
        for element in value:
            if isinstance(element, dict):
                yield from reach(element, path)
        if INDEX.fullmatch(path[0]) and int(path[0]) < len(value):
            element = value[int(path[0])]
            if len(path) == 1:
                # The value itself: an array as a tuple, which the tests never look into.
                yield tuple(element) if isinstance(element, list) else element
            elif isinstance(element, dict | list):
                yield from reach(element, path[1:])
    else:
        yield MISSING


def resolve(payload: dict[str, Any], field: str) -> list[Any]:
    return list(reach(payload, field.split(".")))


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def same_kind(x: Any, y: Any) -> bool:
    """Two scalars that can be compared with <, >: both numbers or both strings."""
    return (is_number(x) and is_number(y)) or (isinstance(x, str) and isinstance(y, str))


def scalar_equal(x: Any, y: Any) -> bool:
    if isinstance(y, bool) or isinstance(x, bool):
        return isinstance(x, bool) and isinstance(y, bool) and x == y
    return same_kind(x, y) and x == y


def any_element(values: list[Any], test: Callable[[Any], bool]) -> bool:
    """``test`` holds for a value, or for any element of a value that is an array."""
    return any(
        any(test(e) for e in v) if isinstance(v, list) else v is not MISSING and test(v)
        for v in values
    )


def equals(values: list[Any], wanted: Any) -> bool:
    if wanted is None:
        return any(v is MISSING for v in values) or any_element(values, lambda x: x is None)
    return any_element(values, lambda x: scalar_equal(x, wanted))


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def operator_holds(values: list[Any], op: str, arg: Any) -> bool:
    if op == "$eq":
        return equals(values, arg)
    if op == "$ne":
        return not equals(values, arg)
    if op == "$in":
        return any(equals(values, a) for a in arg)
    if op == "$nin":
        return not any(equals(values, a) for a in arg)
    if op == "$exists":
        return any(v is not MISSING for v in values) == arg
    if op == "$not":
        return not condition_holds(values, arg)
    compare = COMPARE[op]
    return any_element(values, lambda x: same_kind(x, arg) and compare(x, arg))


def condition_holds(values: list[Any], condition: Any) -> bool:
    if not isinstance(condition, dict):
        return equals(values, condition)
    return all(operator_holds(values, op, arg) for op, arg in condition.items())


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


ITEMS = {"items": [{"name": "x", "qty": 5}, {"name": "y"}, "loose", [{"name": "z"}]]}
CASES = [
    # (payload, filter, expected)
    ({"a": [1, "x", True]}, {"a": 1}, True),
    ({"a": [1, "x", True]}, {"a": "x"}, True),
    ({"a": [1, "x", True]}, {"a": True}, True),
    ({"a": [1, "x", True]}, {"a": 2}, False),
    ({"a": [1, "x", True]}, {"a": {"$gt": 0}}, True),
    ({"a": [1, "x", True]}, {"a": {"$ne": 1}}, False),
    ({"a": [1, "x", True]}, {"a": {"$nin": [7, 1]}}, False),
    ({"a": [1, "x", True]}, {"a": {"$not": {"$gt": 0}}}, False),
    ({"a": [1, "x", True]}, {"a": {"$not": {"$gt": 5}}}, True),
    ({"a": [1, "x", True]}, {"a": None}, False),
    ({"a": [None, 1]}, {"a": None}, True),  # a null element
    ({"a": [None, 1]}, {"a": {"$ne": None}}, False),
    ({"a": [[None], [1]]}, {"a": None}, False),  # one level of array only
    ({"a": [[None], [1]]}, {"a": 1}, False),
    ({"a": []}, {"a": None}, False),
    ({"a": []}, {"a": {"$exists": True}}, True),
    ({"s": "é"}, {"s": {"$gt": "z"}}, True),  # U+00E9 sorts after "z" by code point
    ({"s": "é"}, {"s": {"$lt": "z"}}, False),
    ({"b": 1}, {"b": 1.0}, True),
    ({"b": True}, {"b": 1}, False),
    ({"b": 1}, {"b": True}, False),
    ({"b": "1"}, {"b": 1}, False),
    ({"b": [False]}, {"b": {"$gt": 0}}, False),
    ({"b": 2**63 - 1}, {"b": {"$in": [2**63 - 1, 0.1]}}, True),  # lists bound as JSON
    ({"b": 2**63 - 2}, {"b": {"$in": [2**63 - 1, 0.1]}}, False),
    ({"b": [0.1]}, {"b": {"$in": [2**63 - 1, 0.1]}}, True),
    ({"b": 'a"b\\é'}, {"b": {"$in": ['a"b\\é', "x"]}}, True),
    ({"b": 'a"b'}, {"b": {"$in": ['a"b\\é', "x"]}}, False),
    ({"b": 1}, {"b": {"$in": []}}, False),  # as in MongoDB
    ({"b": 1}, {"b": {"$nin": []}}, True),
    ({"b": 1}, {"zz": {"$nin": []}}, True),
    ({"n": {"x": None}}, {"n.x": None}, True),
    ({"n": {"x": None}}, {"n.x": {"$exists": True}}, True),
    ({"n": {"x": None}}, {"zz": None}, True),
    ({"n": {"x": None}}, {"zz": {"$exists": True}}, False),
    ({"n": {"x": None}}, {"zz": {"$ne": 1}}, True),
    ({"n": {"x": None}}, {"zz": {"$nin": [1]}}, True),
    ({"n": {"x": None}}, {"zz": {"$not": {"$gt": 3}}}, True),
    ({"n": {"m": {"x": 2.5}}}, {"n.m.x": {"$gt": 2, "$lt": 3}}, True),
    ({"n": {"m": {"x": 2.5}}}, {"n.m": {"$exists": True}}, True),
    ({"n": 4}, {"n.x": None}, True),  # a scalar on the way: missing
    ({"n": 4}, {"n.x": {"$exists": False}}, True),
    # Dotted paths through arrays: each object in the array leads on.
    (ITEMS, {"items.name": "x"}, True),
    (ITEMS, {"items.name": "y"}, True),
    (ITEMS, {"items.name": "z"}, False),  # an array in the array leads nowhere
    ({"items": {"name": "x"}}, {"items.name": "x"}, True),
    (ITEMS, {"items.qty": {"$exists": True}}, True),
    (ITEMS, {"items.qty": {"$exists": False}}, False),
    (ITEMS, {"items.size": {"$exists": True}}, False),
    (ITEMS, {"items.size": {"$exists": False}}, True),
    (ITEMS, {"items.name": {"$ne": "x"}}, False),  # $ne: no item may be "x"
    (ITEMS, {"items.name": {"$ne": "z"}}, True),
    (ITEMS, {"items.name": {"$nin": ["w", "y"]}}, False),
    (ITEMS, {"items.name": {"$in": ["w", "y"]}}, True),
    (ITEMS, {"items.qty": {"$gt": 4}}, True),
    (ITEMS, {"items.qty": {"$not": {"$gt": 4}}}, False),
    (ITEMS, {"items.qty": {"$not": {"$gt": 5}}}, True),
    (ITEMS, {"items.qty": None}, True),  # {"name": "y"} has no qty
    (ITEMS, {"items.name": None}, False),
    (ITEMS, {"items.name": {"$ne": None}}, True),
    ({"items": []}, {"items.name": None}, False),  # no object: no value, not even missing
    ({"items": [1, "s", None]}, {"items.name": None}, False),
    ({"items": [1, "s", None]}, {"items.name": {"$exists": False}}, True),
    ({"items": [{"name": ["x", None]}]}, {"items.name": None}, True),
    ({"items": [{"name": ["x", "y"]}]}, {"items.name": "y"}, True),
    ({"a": [{"b": [{"c": 1}, {"c": 2}]}, {"b": {"c": 3}}]}, {"a.b.c": 2}, True),
    ({"a": [{"b": [{"c": 1}, {"c": 2}]}, {"b": {"c": 3}}]}, {"a.b.c": 3}, True),
    ({"a": [{"b": [{"c": 1}, {"c": 2}]}, {"b": {"c": 3}}]}, {"a.b.c": {"$ne": 2}}, False),
    ({"a": [{"b": [{"c": 1}, {"c": 2}]}, {"b": {"c": 3}}]}, {"a.b.c": {"$lt": 1}}, False),
    ({"a": [{"b": [{"c": 1}, {"c": 2}]}, {"b": {"c": 3}}]}, {"a.b.c": None}, False),
    ({"a": [{"b": [{"c": 1}, {"d": 2}]}]}, {"a.b.c": None}, True),
    # Numeric segments: an index in an array, a key in an object.
    ({"tags": ["sale", "new"]}, {"tags.0": "sale"}, True),
    ({"tags": ["sale", "new"]}, {"tags.1": "sale"}, False),
    ({"tags": ["sale", "new"]}, {"tags.1": {"$exists": True}}, True),
    ({"tags": ["sale", "new"]}, {"tags.2": {"$exists": True}}, False),
    ({"tags": ["sale", "new"]}, {"tags.2": None}, False),  # past the end: no value
    ({"tags": ["sale", "new"]}, {"tags.01": "new"}, False),  # not an index: a key
    ({"tags": {"0": "sale"}}, {"tags.0": "sale"}, True),
    ({"tags": [{"0": "x"}, "y"]}, {"tags.0": "x"}, True),  # both readings of "0"
    ({"tags": [{"0": "x"}, "y"]}, {"tags.1": "y"}, True),
    ({"tags": [{"0": "x"}, "y"]}, {"tags.0": {"$ne": "x"}}, False),
    ({"a": [[1, 2]]}, {"a.0": 2}, False),  # an array taken by index is not looked into
    ({"a": [[1, 2]]}, {"a.0": {"$exists": True}}, True),
    ({"a": [[1, 2]]}, {"a.0": None}, False),
    ({"a": [[1, 2]]}, {"a.0": {"$ne": 2}}, True),
    ({"a": [[1, 2]]}, {"a.0.1": 2}, True),  # but the path goes on into it
    ({"a": {"0": [1, 2]}}, {"a.0": 2}, True),  # an array under a key is
    ({"a": [5, None]}, {"a.0.b": None}, False),  # a scalar taken by index leads nowhere
    ({"a": [5, None]}, {"a.1.b": None}, False),
    ({"a": [{}, 5]}, {"a.0.b": None}, True),  # an object does: b is missing there
    ({"a": [{"b": [7, 8]}]}, {"a.0.b.1": 8}, True),
    ({"a": [{"b": [7, 8]}]}, {"a.b.1": 8}, True),
    ({"a": [{"b": [7, 8]}]}, {"a.b.1": 7}, False),
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


def either(*options: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One of the options, each as likely (``st.one_of`` merges the options of nested
    ``one_of``, so that a scalar would be drawn far more often than an object)."""
    return st.sampled_from(options).flatmap(lambda option: option)


def arrays_of(objects: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """Arrays of objects, with now and then a scalar or an array among them."""
    return st.lists(
        either(objects, objects, values, st.lists(objects, max_size=2)),
        min_size=0,
        max_size=3,
    )


# Objects under "n" and "n.m"; "0" is a key that numeric paths read as an index in arrays.
inner = st.fixed_dictionaries({}, optional={"x": values, "0": values})
nested = st.fixed_dictionaries(
    {},
    optional={
        "x": values,
        "y": values,
        "0": values,
        "m": either(arrays_of(inner), inner, values),
    },
)
# "n" is always there (the paths into it are the point); "a" and "b", and so "a.0" and "a.x",
# are missing now and then.
payloads = st.fixed_dictionaries(
    {"n": either(arrays_of(nested), nested, values)}, optional={"a": values, "b": values}
)
# Paths through arrays first: sampled_from draws the first ones most often. "z" is never there.
FIELDS = [
    *["n.x", "n.m.x", "n.0", "n.0.x", "n.m.0", "n.1.m.x", "a.x", "a.0"],
    *["n.y", "n.1", "n.m", "n", "a", "b", "z"],
]
value_lists = st.lists(scalars, max_size=4)
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


@pytest.fixture(scope="module", params=[None, "keyword", "number"])
def col(tmp_path_factory: pytest.TempPathFactory, request: Any) -> Iterator[Collection]:
    """One small flat l2 collection, refilled by every example: without payload indexes,
    and with every field indexed as keywords, then as numbers (the indexes answer what
    they can tell exactly, and the payloads the rest)."""
    indexes = None if request.param is None else dict.fromkeys(FIELDS, request.param)
    with Engine(tmp_path_factory.mktemp("filters") / "data", background=False) as engine:
        yield engine.create_collection("filters", dim=DIM, metric="l2", payload_indexes=indexes)


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


def nested_not(levels: int, field: str = "a") -> dict[str, Any]:
    spec: dict[str, Any] = {field: 1}
    for _ in range(levels):
        spec = {"$not": spec}
    return spec


def nested_and(levels: int, field: str = "a") -> dict[str, Any]:
    spec: dict[str, Any] = {field: 1}
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
    ({"a": {"$in": "x"}}, "\\$in takes a list of values"),
    ({"a": {"$nin": 3}}, "\\$nin takes a list of values"),
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
    ({".".join("a" * 17): 1}, "nests deeper than 16 .*each part of a dotted field name"),
    (nested_not(9, ".".join("a" * 8)), "nests deeper than 16"),
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


DEEPEST = [
    nested_not(15),
    nested_and(15),
    nested_not(8, ".".join("a" * 8)),
    {".".join("a" * 16): {"$in": [1, "x", None], "$exists": True}},
    {"$or": [{".".join("a" * 15): i} for i in range(MAX_CONDITIONS)]},  # the most conditions
]


@pytest.mark.parametrize("spec", DEEPEST, ids=[repr(s)[:40] for s in DEEPEST])
def test_deepest_filters_allowed_run_on_arrays_all_the_way(col: Collection, spec: Any) -> None:
    """SQLite takes the largest filters allowed, over a path with arrays at every step."""
    payload: Any = 1
    for _ in range(16):
        payload = {"a": [{"b": 0}, [{"a": 1}], payload]}  # the array in the array: no way
    refill(col, [payload, {"a": 1}], seed=0)
    assert col.count(spec) == sum(matches(p, spec) for p in [payload, {"a": 1}]), show(spec)


def test_long_value_lists_fit_in_one_statement(col: Collection) -> None:
    """Value lists are bound one parameter each, so that SQLite's cap on them is far."""
    refill(col, [{"a": [{"b": i}]} for i in range(10)], seed=0)
    many = list(range(MAX_IN_VALUES - 1))
    spec = {"$or": [{"a.b": {"$in": [*many, i]}} for i in range(MAX_CONDITIONS)]}
    assert col.count(spec) == 10


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


def nested_value(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value} if kind == "object" else [value]
    return value


NESTED_VALUES = [
    ({"o": {"$eq": nested_value(1_000, "object")}}, "takes a string, number"),
    ({"o": nested_value(1_000, "list")}, "takes one value"),
    ({"o": {"$gt": nested_value(1_000, "object")}}, "takes a string, number"),
    ({"o": {"$in": [1, nested_value(1_000, "object")]}}, "takes a string, number"),
    ({"$and": [nested_value(1_000, "list")]}, "non-empty object"),
    ({"$not": nested_value(1_000, "list")}, "non-empty object"),
]


@pytest.mark.parametrize(
    ("spec", "message"), NESTED_VALUES, ids=[f"{i}" for i in range(len(NESTED_VALUES))]
)
def test_a_value_nested_a_thousand_deep_is_refused_with_a_short_reason(
    spec: Any, message: str
) -> None:
    with pytest.raises(InvalidFilter, match=message) as refused:
        compile_filter(spec)
    assert len(refused.value.message) < 200
