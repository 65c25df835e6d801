"""JSON Schema for the rules of request models that their fields' types do not say: which
fields must be given, and how many of a set. Models add these to their schema
(``json_schema_extra``), so that a client generated from the OpenAPI document sends only
requests their validators take."""

from __future__ import annotations

from typing import Any


def given(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The field ``name`` is given and not null (and, with ``schema``, matches it)."""
    value: dict[str, Any] = {"not": {"type": "null"}}
    if schema is not None:
        value = {"allOf": [value, schema]}
    return {"required": [name], "properties": {name: value}}


def exactly_one_of(*names: str) -> dict[str, Any]:
    """Exactly one of the fields ``names`` is given and not null."""
    return {"oneOf": [given(name) for name in names]}
