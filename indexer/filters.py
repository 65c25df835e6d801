"""The payload filter language, compiled to SQL over the store's JSON payloads.

The language is the Mongo-style one users know from Pinecone and Chroma::

    {"color": "red"}                                   equality
    {"price": {"$gte": 10, "$lt": 100}}                several operators on a field: all hold
    {"tags": {"$in": ["sale", "new"]}}                 $eq $ne $gt $gte $lt $lte $in $nin $exists
    {"$or": [{"color": "red"}, {"brand.name": "acme"}]} $and $or (lists), $not (a filter)
    {"price": {"$not": {"$gt": 100}}}                  $not on a field's operators

Semantics, as in MongoDB:

- Dotted paths reach into nested objects (``brand.name``).
- A field holding an array matches when any element matches (``{"tags": "sale"}``).
- Values compare only within their type: numbers with numbers (ints and floats alike),
  strings with strings (by code point), booleans only by equality; ``true`` is not ``1``.
- ``$ne`` and ``$nin`` also match points where the field is missing.
- ``{"field": None}`` matches a null or missing field; ``$exists`` is true for a null field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from indexer.errors import InvalidFilter

MAX_DEPTH = 16
MAX_IN_VALUES = 1024
MAX_CONDITIONS = 256
_SEGMENT = re.compile(r"^[^.\"\\\x00-\x1f$][^.\"\\\x00-\x1f]{0,127}$")
_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_FIELD_OPERATORS = {"$eq", "$ne", "$in", "$nin", "$exists", "$not", *_COMPARISONS}

Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class SqlFilter:
    """A compiled filter: a WHERE clause over the ``points`` table and its parameters."""

    where: str
    params: tuple[Scalar, ...]


def compile_filter(spec: object) -> SqlFilter:
    """Compile a filter into SQL, or raise :class:`InvalidFilter` saying what is wrong."""
    compiler = _Compiler()
    where = compiler.filter(spec, depth=0)
    return SqlFilter(where, tuple(compiler.params))


class _Compiler:
    def __init__(self) -> None:
        self.params: list[Scalar] = []
        self.conditions = 0

    def filter(self, spec: object, depth: int) -> str:
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
                parts.append("(" + joiner.join(self.filter(v, depth + 1) for v in value) + ")")
            elif key == "$not":
                parts.append(f"(NOT {self.filter(value, depth + 1)})")
            elif key.startswith("$"):
                raise InvalidFilter(f"unknown logical operator {key!r}; use $and, $or or $not")
            else:
                parts.append(self.field(_json_path(key), value, depth + 1))
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def field(self, path: str, condition: object, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise InvalidFilter(f"the filter nests deeper than {MAX_DEPTH} levels")
        if not isinstance(condition, dict):
            return self.eq(path, condition)
        if not condition:
            raise InvalidFilter("an operator object needs at least one operator")
        parts = []
        for op, operand in condition.items():
            if op not in _FIELD_OPERATORS:
                hint = "" if str(op).startswith("$") else " (objects are matched field by field)"
                raise InvalidFilter(f"unknown operator {op!r}{hint}")
            parts.append(self.operator(path, op, operand, depth))
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def operator(self, path: str, op: str, operand: object, depth: int) -> str:
        if op == "$eq":
            return self.eq(path, operand)
        if op == "$ne":
            return f"(NOT {self.eq(path, operand)})"
        if op in ("$in", "$nin"):
            sql = self.one_of(path, op, operand)
            return sql if op == "$in" else f"(NOT {sql})"
        if op == "$exists":
            if not isinstance(operand, bool):
                raise InvalidFilter("$exists takes true or false")
            self.count()
            self.params.append(path)
            return f"(json_type(payload, ?) IS {'NOT ' if operand else ''}NULL)"
        if op == "$not":
            if not isinstance(operand, dict):
                raise InvalidFilter("$not on a field takes an operator object, e.g. {'$gt': 3}")
            return f"(NOT {self.field(path, operand, depth + 1)})"
        symbol = _COMPARISONS[op]
        value = _scalar(operand, op)
        if isinstance(value, str):
            return self.any_element(path, lambda t, v: f"{t} = 'text' AND {v} {symbol} ?", value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self.any_element(
                path, lambda t, v: f"{t} IN ('integer','real') AND {v} {symbol} ?", value
            )
        raise InvalidFilter(f"{op} compares numbers or strings, got {_show(operand)}")

    def eq(self, path: str, value: object) -> str:
        value = _scalar(value, "equality")
        if value is None:
            self.count()
            self.params.append(path)
            return "(COALESCE(json_type(payload, ?), 'null') = 'null')"
        if isinstance(value, bool):
            kind = "'true'" if value else "'false'"
            return self.any_element(path, lambda t, _v: f"{t} = {kind}")
        if isinstance(value, str):
            return self.any_element(path, lambda t, v: f"{t} = 'text' AND {v} = ?", value)
        return self.any_element(path, lambda t, v: f"{t} IN ('integer','real') AND {v} = ?", value)

    def one_of(self, path: str, op: str, operand: object) -> str:
        if not isinstance(operand, list) or not operand:
            raise InvalidFilter(f"{op} takes a non-empty list of values")
        if len(operand) > MAX_IN_VALUES:
            raise InvalidFilter(f"{op} takes at most {MAX_IN_VALUES} values, got {len(operand)}")
        values = [_scalar(v, op) for v in operand]
        parts = []
        texts = [v for v in values if isinstance(v, str)]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if texts:
            marks = ",".join("?" * len(texts))
            parts.append(
                self.any_element(path, lambda t, v: f"{t} = 'text' AND {v} IN ({marks})", *texts)
            )
        if numbers:
            marks = ",".join("?" * len(numbers))
            parts.append(
                self.any_element(
                    path, lambda t, v: f"{t} IN ('integer','real') AND {v} IN ({marks})", *numbers
                )
            )
        parts.extend(self.eq(path, b) for b in {v for v in values if isinstance(v, bool)})
        if None in values:
            parts.append(self.eq(path, None))
        return "(" + " OR ".join(parts) + ")"

    def any_element(self, path: str, test: Callable[[str, str], str], *values: Scalar) -> str:
        """``test`` holds for the field's value, or for any element when it is an array.

        ``test(type_sql, value_sql)`` renders the condition with ``?`` for ``values``.
        COALESCE turns SQL's NULL (a missing field) into false, so NOT works as expected.
        """
        self.count()
        element = test("je.type", "je.value")
        scalar = test("json_type(payload, ?)", "json_extract(payload, ?)")
        # Parameters follow the text: CASE operand, json_each, the element test, the scalar test.
        self.params.extend([path, path, *values])
        remaining = list(values)
        for token in re.findall(r"json_\w+\(payload, \?\)|\?", scalar):
            self.params.append(path if token.startswith("json_") else remaining.pop(0))
        return (
            "COALESCE(CASE json_type(payload, ?) WHEN 'array' THEN"
            f" EXISTS (SELECT 1 FROM json_each(payload, ?) AS je WHERE {element})"
            f" ELSE ({scalar}) END, 0)"
        )

    def count(self) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise InvalidFilter(f"the filter has more than {MAX_CONDITIONS} conditions")


def _json_path(field: str) -> str:
    segments = field.split(".")
    for segment in segments:
        if not _SEGMENT.match(segment):
            raise InvalidFilter(
                f"invalid field name {field!r}: dotted names of 1 to 128 characters each, "
                "without quotes, backslashes or a leading $"
            )
    return "$" + "".join(f'."{s}"' for s in segments)


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


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
