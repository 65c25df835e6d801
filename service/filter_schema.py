"""The filter language (see :mod:`indexer.filters`) as JSON Schema, for the OpenAPI
document: what a client generated from it may send is what the filter compiler takes,
but for the limits on depth and on the number of conditions, which JSON Schema cannot
count (a filter past them is a 422 ``InvalidFilter``)."""

from __future__ import annotations

from typing import Any

from indexer.filters import MAX_IN_VALUES

# A dotted field name: segments of 1 to 128 characters, no quotes, backslashes or control
# characters, none starting with $ (indexer.filters._SEGMENT).
_SEGMENT = r"[^.\"\\\x00-\x1f$][^.\"\\\x00-\x1f]{0,127}"
# At most 6 segments: with a $and, $or or $not around and a $not inside, a filter of this
# schema is then never deeper than the server's default max_filter_depth (8).
FIELD_PATTERN = rf"^{_SEGMENT}(?:\.{_SEGMENT}){{0,5}}$"

_INT64 = {"type": "integer", "minimum": -(2**63 - 2048), "maximum": 2**63 - 2048}  # as doubles
_SCALAR: dict[str, Any] = {
    "anyOf": [{"type": "string"}, _INT64, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]
}
_COMPARABLE: dict[str, Any] = {"anyOf": [{"type": "string"}, _INT64, {"type": "number"}]}
_VALUES: dict[str, Any] = {"type": "array", "items": _SCALAR, "maxItems": MAX_IN_VALUES}
_COMPARISONS: dict[str, Any] = {
    "$eq": _SCALAR,
    "$ne": _SCALAR,
    "$gt": _COMPARABLE,
    "$gte": _COMPARABLE,
    "$lt": _COMPARABLE,
    "$lte": _COMPARABLE,
    "$in": _VALUES,
    "$nin": _VALUES,
    "$exists": {"type": "boolean"},
}
_OPERATORS: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        **_COMPARISONS,
        # $not takes these operators again, one level down; deeper is left to the server.
        "$not": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": _COMPARISONS,
        },
    },
}
# Conditions on fields, each a value to equal or an object of operators.
_CONDITIONS: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"pattern": FIELD_PATTERN},
    "additionalProperties": {"anyOf": [_SCALAR, _OPERATORS]},
}
FILTER_SCHEMA: dict[str, Any] = {
    "description": "a filter on payload fields: {field: value}, {field: {$op: value}}, "
    "$and/$or (lists of filters), $not (a filter); at most 16 levels deep",
    "anyOf": [
        _CONDITIONS,
        {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "$and": {"type": "array", "minItems": 1, "items": _CONDITIONS},
                "$or": {"type": "array", "minItems": 1, "items": _CONDITIONS},
                "$not": _CONDITIONS,
            },
        },
    ],
}
