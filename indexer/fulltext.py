"""Full-text fields: what a collection indexes for lexical (BM25) search, and its SQL.

A collection declares full-text fields, at creation or later: payload fields by dotted path
(``title``, ``brand.name``, ``_source.text`` for the text kept by ``store_source``), each
with a weight, and one tokenizer for all of them. The index is an FTS5 table, ``ft``, in
the collection's own SQLite database: one column per field, the point's label as rowid.
Upserts and deletes change it in the transaction that changes the points, so a point's
words and its vector are committed, deleted, snapshotted and restored together.

A field's text is every string its path reaches: the string itself, or each string found
anywhere inside an array or object there (numbers, booleans and keys are not indexed).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from indexer.errors import InvalidFullText, validated

FULL_TEXT_TABLE = "ft"
MAX_FIELDS = 16
MAX_PATH_LENGTH = 512
MAX_WEIGHT = 1000
# What FullTextField's validators take, for JSON Schema: dotted names of 1 to 128
# characters, none starting with $, without quotes, backslashes or control characters.
_SEGMENT = r'[^.$"\\\x00-\x1f][^."\\\x00-\x1f]{0,127}'
PATH_PATTERN = rf"^{_SEGMENT}(?:\.{_SEGMENT})*$"
Tokenizer = Literal["unicode61", "porter", "trigram"]

# unicode61 folds case and (remove_diacritics 2) accents in any script; porter stems English
# words on top of it; trigram indexes every three characters, so that substrings and words
# with a typo outside some trigram still match.
TOKENIZERS: dict[str, str] = {
    "unicode61": "unicode61 remove_diacritics 2",
    "porter": "porter unicode61 remove_diacritics 2",
    "trigram": "trigram",
}


class FullTextField(BaseModel):
    """One payload field in the full-text index, and its weight in BM25 (BM25F-like: a
    match in a field of weight 2 counts twice as much as one in a field of weight 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, max_length=MAX_PATH_LENGTH)
    weight: float = Field(default=1.0, gt=0, le=MAX_WEIGHT)

    @model_validator(mode="before")
    @classmethod
    def _bare_path(cls, value: object) -> object:
        """A bare path stands for that field with weight 1."""
        return {"path": value} if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _dotted_path(cls, path: str) -> str:
        segments = path.split(".")
        for segment in segments:
            if not segment or len(segment) > 128 or segment.startswith("$"):
                raise ValueError(
                    f"invalid field path {path!r}: dotted names of 1 to 128 characters,"
                    " none starting with $"
                )
            if any(c in segment for c in '"\\') or any(ord(c) < 0x20 for c in segment):
                raise ValueError(f"invalid field path {path!r}: no quotes or backslashes")
        return path

    @field_validator("weight")
    @classmethod
    def _finite(cls, weight: float) -> float:
        if not math.isfinite(weight):
            raise ValueError("a weight is a finite number")
        return weight


class FullTextSpec(BaseModel):
    """A collection's full-text declaration: its fields and tokenizer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: list[FullTextField] = Field(min_length=1, max_length=MAX_FIELDS)
    tokenizer: Tokenizer = "unicode61"

    @model_validator(mode="after")
    def _distinct_paths(self) -> FullTextSpec:
        paths = [f.path for f in self.fields]
        if len(set(paths)) != len(paths):
            raise ValueError("each full-text field is declared once")
        return self

    @classmethod
    def parse(cls, value: object) -> FullTextSpec:
        """A spec from a spec, a dict, or a list of field paths; else :class:`InvalidFullText`."""
        if isinstance(value, list):
            value = {"fields": value}
        prefix = "invalid full-text declaration: "
        return validated(cls, value, InvalidFullText, "full_text", prefix)

    # -- SQL ---------------------------------------------------------------------------

    def create_sql(self) -> str:
        columns = ", ".join(f"c{i}" for i in range(len(self.fields)))
        return (
            f"CREATE VIRTUAL TABLE {FULL_TEXT_TABLE} USING fts5({columns},"
            f" tokenize = '{TOKENIZERS[self.tokenizer]}')"
        )

    def insert_sql(self) -> str:
        """INSERT of the rows of the points whose labels are the JSON list parameter."""
        columns = ", ".join(f"c{i}" for i in range(len(self.fields)))
        texts = ", ".join(_text_at(f.path) for f in self.fields)
        return (
            f"INSERT INTO {FULL_TEXT_TABLE} (rowid, {columns})"
            f" SELECT label, {texts} FROM points"
            " WHERE label IN (SELECT value FROM json_each(?))"
        )

    def rank_sql(self) -> str:
        """FTS5's rank function: bm25() with the fields' weights (lower is better)."""
        weights = ", ".join(repr(float(f.weight)) for f in self.fields)
        return f"bm25({weights})"


def _text_at(path: str) -> str:
    """SQL for the text at a dotted path: its strings joined by newlines, or NULL."""
    json_path = "$" + "".join(f'."{s}"' for s in path.split("."))
    # A SQL string literal: a quote in a field's name is doubled, so the name stays data.
    literal = "'" + json_path.replace("'", "''") + "'"
    return (
        "(SELECT group_concat(value, char(10)) FROM json_tree(points.payload,"
        f" {literal}) WHERE type = 'text')"
    )
