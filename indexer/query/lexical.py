"""A user's words as an FTS5 MATCH expression.

Words are never taken as FTS5 syntax unless the caller asks for it: each whitespace-separated
token becomes an FTS5 string (in double quotes, its own quotes doubled), inside which FTS5's
tokenizer sees only text, so ``AND``, ``NEAR(``, ``*``, ``^``, ``:`` and braces are words or
separators like any other character. How the strings combine is the match mode:

- ``any`` (default): any of the words (OR); BM25 ranks points with more of them, and rarer
  ones, higher.
- ``all``: every word (AND).
- ``phrase``: the words in this order, next to each other.
- ``prefix``: any word beginning with one of the words (OR of prefix queries).
- ``fts5``: the text is an FTS5 query expression, as is (a syntax error is InvalidQuery).
  The full-text fields are its columns ``c0``, ``c1``, ... in the order declared
  (``c0:wool NOT scarf``).

A query keeps its first ``MAX_TOKENS`` distinct words: enough for any real query, and a
bound on the work a pasted page of text can cause.
"""

from __future__ import annotations

from typing import Literal

MatchMode = Literal["any", "all", "phrase", "prefix", "fts5"]
MAX_TOKENS = 64


def match_expression(text: str, mode: MatchMode = "any") -> str | None:
    """The MATCH expression for ``text``, or None when it has no words (matches nothing)."""
    text = _storable(text)
    if mode == "fts5":
        return text if text.strip() else None
    words = text.split()
    if not words:
        return None
    if mode == "phrase":
        return _string(" ".join(words[:MAX_TOKENS]))
    tokens = list(dict.fromkeys(words))[:MAX_TOKENS]
    if mode == "prefix":
        return " OR ".join(_string(t) + "*" for t in tokens)
    return (" AND " if mode == "all" else " OR ").join(_string(t) for t in tokens)


def _string(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def _storable(text: str) -> str:
    """``text`` without what SQLite cannot take as query text: lone surrogates (not UTF-8)
    and NUL characters (which end a C string)."""
    return text.encode("utf-8", "ignore").decode("utf-8").replace("\x00", " ")
