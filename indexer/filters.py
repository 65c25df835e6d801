"""The payload filter language, compiled to SQL over the store's JSON payloads.

The language is the Mongo-style one users know from Pinecone and Chroma::

    {"color": "red"}                                   equality
    {"price": {"$gte": 10, "$lt": 100}}                several operators on a field: all hold
    {"tags": {"$in": ["sale", "new"]}}                 $eq $ne $gt $gte $lt $lte $in $nin $exists
    {"$or": [{"color": "red"}, {"brand.name": "acme"}]} $and $or (lists), $not (a filter)
    {"price": {"$not": {"$gt": 100}}}                  $not on a field's operators

Semantics, as in MongoDB:

- A dotted path leads from the payload to the values it reaches. An object leads on by the
  next key. An array leads on from each of its elements that is an object, so
  ``items.name`` reaches the name of every item; its other elements, arrays included, lead
  nowhere. A scalar, a null or a missing key before the path's end leads to a missing value.
- A numeric key (``0``, ``12``: no sign, no leading zero) is a key in an object, and in an
  array it also takes the element at that index, counting from 0 (``tags.0``). At the end
  of the path that element is the value itself: an array there is not looked into, so it
  matches no value, though it exists. Before the end, the path goes on from it only if it
  is an object or an array.
- A field matches an operator when a value its path reaches matches it, or when that value
  is an array, one of its elements (``{"tags": "sale"}``, ``{"items.qty": {"$gt": 3}}``).
  Arrays nested in that array are elements like any other: ``[[1]]`` does not match ``1``.
- Values compare only within their type: numbers with numbers (ints and floats alike),
  strings with strings (by code point), booleans only by equality; ``true`` is not ``1``.
- ``{"field": None}`` matches a missing value, a null, or an array holding a null.
  ``$exists`` is true when the path reaches a value, a null or ``[]`` included.
- ``$ne``, ``$nin`` and ``$not`` are the negations of ``$eq``, ``$in`` and of the operators
  they take: ``{"tags": {"$ne": "sale"}}`` matches when no value or element equals
  ``"sale"``, and when ``tags`` is missing.
- ``$in: []`` matches nothing and ``$nin: []`` matches everything.
- Each segment of a dotted path counts as a level of nesting, as ``$and``, ``$or`` and
  ``$not`` do: at most ``MAX_DEPTH`` in all.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from indexer.errors import InvalidFilter, InvalidInput

MAX_DEPTH = 16
MAX_IN_VALUES = 1024
MAX_CONDITIONS = 256
_SEGMENT = re.compile(r"^[^.\"\\\x00-\x1f$][^.\"\\\x00-\x1f]{0,127}$")
# A segment that can index an array. A longer number never could (no stored array is that
# long), and SQLite's JSON paths wrap indexes past 2**32.
_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")
_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_OPERATOR_ORDER = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not")
_FIELD_OPERATORS = frozenset(_OPERATOR_ORDER)
_TEXT = ("text",)  # JSON types, as json_type names them
_NUMBER = ("integer", "real")

Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class SqlFilter:
    """A compiled filter: a WHERE clause over the ``points`` table and its parameters."""

    where: str
    params: tuple[Scalar, ...]


def compile_filter(spec: object) -> SqlFilter:
    """Compile a filter into SQL, or raise :class:`InvalidFilter` saying what is wrong."""
    sql = _Compiler().filter(spec, depth=0)
    return SqlFilter(sql.text, sql.params)


@dataclass(frozen=True, slots=True)
class _Sql:
    """A piece of SQL and the values of its ``?`` placeholders, in order."""

    text: str
    params: tuple[Scalar, ...] = ()


# What matches, by JSON type: for each type that can match, the condition on a value of that
# type (``= ?``, ``> ?``...), or None when every value of the type does (``true``, ``null``).
_Match = dict[str, _Sql | None]
# SQL that holds for the value at a JSON path (itself given as SQL).
_Leaf = Callable[[_Sql], _Sql]


def _sql(template: str, **pieces: _Sql | Scalar) -> _Sql:
    """``template`` with each ``{name}`` filled: a piece of SQL as it is, a value as ``?``.

    A name may come several times; its placeholders and their values go in each time.
    """
    sql = {k: p if isinstance(p, _Sql) else _Sql("?", (p,)) for k, p in pieces.items()}
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    return _Sql(
        template.format_map({k: s.text for k, s in sql.items()}),
        tuple(v for name in names for v in sql[name].params),
    )


def _join(separator: str, pieces: Sequence[_Sql], *, parenthesized: bool = True) -> _Sql:
    text = separator.join(p.text for p in pieces)
    if parenthesized and len(pieces) > 1:
        text = f"({text})"
    return _Sql(text, tuple(v for p in pieces for v in p.params))


def _not(piece: _Sql) -> _Sql:
    return _Sql(f"(NOT {piece.text})", piece.params)


def _is_in(values: Sequence[Scalar]) -> _Sql:
    """``= ?``, or for several values ``IN`` one parameter: them as a JSON array (a filter
    may hold many long lists, and SQLite caps the parameters of a statement)."""
    if len(values) == 1:
        return _sql("= {value}", value=values[0])
    return _sql("IN (SELECT value FROM json_each({values}))", values=json.dumps(values))


def _cases(match: _Match, value: _Sql) -> _Sql:
    """The ``WHEN`` clauses of a ``CASE`` on a JSON type that tell whether ``value`` matches."""
    return _join(
        " ",
        [
            _Sql(f"WHEN '{kind}' THEN 1")
            if condition is None
            else _sql(
                f"WHEN '{kind}' THEN {{value}} {{condition}}", value=value, condition=condition
            )
            for kind, condition in match.items()
        ],
        parenthesized=False,
    )


def _json(function: str, path: _Sql) -> _Sql:
    """``function(payload, path)``: ``json_type``, ``json_extract``... at a JSON path."""
    return _sql(function + "(payload, {path})", path=path)


class _Compiler:
    def __init__(self) -> None:
        self.conditions = 0
        self.aliases = 0

    def filter(self, spec: object, depth: int) -> _Sql:
        if depth > MAX_DEPTH:
            raise InvalidFilter(f"the filter nests deeper than {MAX_DEPTH} levels")
        if not isinstance(spec, dict) or not spec:
            raise InvalidFilter(f"a filter is a non-empty object, got {_show(spec)}")
        parts = []
        for key, value in spec.items():
            if not isinstance(key, str):
                raise InvalidFilter(f"filter keys are strings, got {_show(key)}")
            if key in ("$and", "$or"):
                if not isinstance(value, list) or not value:
                    raise InvalidFilter(f"{key} takes a non-empty list of filters")
                joiner = " AND " if key == "$and" else " OR "
                parts.append(_join(joiner, [self.filter(v, depth + 1) for v in value]))
            elif key == "$not":
                parts.append(_not(self.filter(value, depth + 1)))
            elif key.startswith("$"):
                raise InvalidFilter(f"unknown logical operator {key!r}; use $and, $or or $not")
            else:
                segments = field_segments(key)
                parts.append(self.field(segments, value, depth + len(segments)))
        return _join(" AND ", parts)

    def field(self, segments: tuple[str, ...], condition: object, depth: int) -> _Sql:
        if depth > MAX_DEPTH:
            raise InvalidFilter(
                f"the filter nests deeper than {MAX_DEPTH} levels "
                "(counting $and, $or, $not and each part of a dotted field name)"
            )
        if not isinstance(condition, dict):
            return self.eq(segments, condition)
        if not condition:
            raise InvalidFilter("an operator object needs at least one operator")
        parts = []
        for op, operand in condition.items():
            if op not in _FIELD_OPERATORS:
                hint = "" if str(op).startswith("$") else " (objects are matched field by field)"
                raise InvalidFilter(
                    f"unknown operator {op!r}{hint}; the operators on a field are "
                    + ", ".join(_OPERATOR_ORDER)
                )
            parts.append(self.operator(segments, op, operand, depth))
        return _join(" AND ", parts)

    def operator(self, segments: tuple[str, ...], op: str, operand: object, depth: int) -> _Sql:
        if op == "$eq":
            return self.eq(segments, operand)
        if op == "$ne":
            return _not(self.eq(segments, operand))
        if op in ("$in", "$nin"):
            sql = self.one_of(segments, op, operand)
            return sql if op == "$in" else _not(sql)
        if op == "$exists":
            if not isinstance(operand, bool):
                raise InvalidFilter("$exists takes true or false")
            found = self.reaches(
                segments,
                lambda path: _sql("({t} IS NOT NULL)", t=_json("json_type", path)),
                for_exists=True,
            )
            return found if operand else _not(found)
        if op == "$not":
            if not isinstance(operand, dict):
                raise InvalidFilter("$not on a field takes an operator object, e.g. {'$gt': 3}")
            return _not(self.field(segments, operand, depth + 1))
        value = _scalar(operand, op)
        if isinstance(value, bool) or value is None:
            raise InvalidFilter(f"{op} compares numbers or strings, got {_show(operand)}")
        condition = _sql(f"{_COMPARISONS[op]} {{value}}", value=value)
        kinds = _TEXT if isinstance(value, str) else _NUMBER
        return self.any_value(segments, dict.fromkeys(kinds, condition))

    def eq(self, segments: tuple[str, ...], value: object) -> _Sql:
        return self.equal_to_any(segments, [_scalar(value, "equality")])

    def one_of(self, segments: tuple[str, ...], op: str, operand: object) -> _Sql:
        if not isinstance(operand, list):
            raise InvalidFilter(f"{op} takes a list of values")
        if len(operand) > MAX_IN_VALUES:
            raise InvalidFilter(f"{op} takes at most {MAX_IN_VALUES} values, got {len(operand)}")
        values = [_scalar(v, op) for v in operand]
        if not values:
            return _Sql("0")  # as in MongoDB: $in [] matches nothing, so $nin [] everything
        return self.equal_to_any(segments, values)

    def equal_to_any(self, segments: tuple[str, ...], values: list[Scalar]) -> _Sql:
        texts = [v for v in values if isinstance(v, str)]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        match: _Match = {}
        if texts:
            match |= dict.fromkeys(_TEXT, _is_in(texts))
        if numbers:
            match |= dict.fromkeys(_NUMBER, _is_in(numbers))
        for value, kind in ((True, "true"), (False, "false"), (None, "null")):
            if any(v is value for v in values):
                match[kind] = None
        return self.any_value(segments, match)

    def any_value(self, segments: tuple[str, ...], match: _Match) -> _Sql:
        """``match`` holds for a value the path reaches, or for an element of one (an array)."""
        return self.reaches(segments, lambda path: self.any_element(path, match))

    def any_element(self, path: _Sql, match: _Match) -> _Sql:
        """``match`` holds for the value at ``path``, or for an element when it is an array.

        A missing value is tested as a null: as in MongoDB, ``{"f": None}`` matches it and
        no other test does. Each value is read once, by its JSON type.
        """
        element = self.alias()
        return _sql(
            "CASE COALESCE({type}, 'null') WHEN 'array' THEN EXISTS (SELECT 1 FROM {each} AS {e}"
            " WHERE CASE {e}.type {element_cases} ELSE 0 END) {cases} ELSE 0 END",
            type=_json("json_type", path),
            each=_json("json_each", path),
            e=_Sql(element),
            element_cases=_cases(match, _Sql(f"{element}.value")),
            cases=_cases(match, _json("json_extract", path)),
        )

    def reaches(self, segments: tuple[str, ...], leaf: _Leaf, *, for_exists: bool = False) -> _Sql:
        """``leaf`` holds at some place the dotted path reaches (see the module docstring).

        ``for_exists``: an array that a last numeric segment takes by index is there as a
        value; otherwise it is left out, as no value equals an array (MongoDB does not look
        into it).
        """
        self.count()
        end = _sql("{path}", path=_json_path(segments))
        if len(segments) == 1:
            return leaf(end)
        # With no array on the way (the usual case) the path reaches one place, which one
        # JSON path finds (nothing there when a scalar, a null or nothing is on the way).
        straight = _join(
            " AND ",
            [
                _sql("json_type(payload, {prefix}) IS NOT 'array'", prefix=_json_path(segments[:i]))
                for i in range(1, len(segments))
            ],
        )
        # Otherwise, the JSON paths of the places reached, one segment at a time; joined side
        # by side rather than nested, as SQLite's parser takes only so many nested queries.
        path = _sql("{path}", path=_json_path(segments[:1]))
        places = []
        for position, key in enumerate(segments[1:], start=2):
            if position < len(segments):
                by_index = "IN ('object','array')"  # an element that the path can go on from
            else:
                by_index = "IS NOT NULL" if for_exists else "<> 'array'"
            place = self.alias()
            places.append(
                _sql(
                    "json_each((SELECT json_group_array(path) FROM ({steps}))) AS {place}",
                    steps=self.steps(path, key, by_index),
                    place=_Sql(place),
                )
            )
            path = _Sql(f"{place}.value")
        return _sql(
            "(CASE WHEN {straight} THEN {leaf}"
            " ELSE EXISTS (SELECT 1 FROM {places} WHERE {at}) END)",
            straight=straight,
            leaf=leaf(end),
            places=_join(", ", places, parenthesized=False),
            at=leaf(path),
        )

    def steps(self, path: _Sql, key: str, by_index: str) -> _Sql:
        """Rows of the JSON paths one ``key`` on from the value at ``path``: the key in the
        value unless it is an array (nothing there unless it is an object), the key in each
        object of an array, and for a numeric key, the array's element at that index if its
        JSON type passes the test ``by_index``."""
        element = self.alias()
        step = f'."{key}"'
        rows = _sql(
            "SELECT {path} || {step} AS path WHERE {type} IS NOT 'array'"
            " UNION ALL SELECT {path} || '[' || {e}.key || ']' || {step}"
            " FROM json_each(payload, CASE {type} WHEN 'array' THEN {path} END) AS {e}"
            " WHERE {e}.type = 'object'",
            path=path,
            step=step,
            type=_json("json_type", path),
            e=_Sql(element),
        )
        index = array_index(key)
        if index is None:
            return rows
        return _sql(
            "{rows} UNION ALL SELECT {path} || {index}"
            f" WHERE json_type(payload, {{path}} || {{index}}) {by_index}",
            rows=rows,
            path=path,
            index=f"[{index}]",
        )

    def alias(self) -> str:
        self.aliases += 1
        return f"j{self.aliases}"

    def count(self) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise InvalidFilter(f"the filter has more than {MAX_CONDITIONS} conditions")


def field_segments(field: str, error: type[InvalidInput] = InvalidFilter) -> tuple[str, ...]:
    """The segments of a dotted field name, or ``error`` saying what a name must be."""
    segments = tuple(field.split("."))
    for segment in segments:
        if not _SEGMENT.match(segment):
            raise error(
                f"invalid field name {field!r}: dotted names of 1 to 128 characters each, "
                "without quotes, backslashes or a leading $"
            )
    return segments


def _json_path(segments: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{s}"' for s in segments)


def array_index(segment: str) -> int | None:
    """The array index a path segment also stands for, or None."""
    return int(segment) if _INDEX.fullmatch(segment) else None


def _scalar(value: object, where: str) -> Scalar:
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise InvalidFilter(f"integer {value} in {where} is outside the 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidFilter(f"{where} needs a finite number, got {value}")
        return value
    if isinstance(value, list):
        raise InvalidFilter(f"{where} takes one value; to match any of several, use $in")
    raise InvalidFilter(f"{where} takes a string, number, boolean or null, got {_show(value)}")


def _short_repr() -> reprlib.Repr:
    # Nesting stops at a few levels: a plain repr of a value nested a thousand deep (any
    # JSON body can hold one) is a RecursionError, and long anyway.
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 3, 40, 40
    short.maxdict = short.maxlist = 4
    return short


_SHORT_REPR = _short_repr()


def _show(value: Any) -> str:
    text = _SHORT_REPR.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
