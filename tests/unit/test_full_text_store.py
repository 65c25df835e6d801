"""The full-text index in the store of record: same transaction as the points, background
backlog, and any query text, however odd, answered without an error."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.errors import InvalidFullText, InvalidQuery
from indexer.fulltext import FullTextSpec
from indexer.query.lexical import MAX_TOKENS, match_expression
from indexer.store import SqliteStore
from tests.support.corpora import FTS5_ODD_WORDS

SPEC = FullTextSpec.parse({"fields": [{"path": "title", "weight": 2}, {"path": "tags"}]})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "store.sqlite3")
    yield s
    s.close()


def write(store: SqliteStore, points: dict[str, dict[str, object]]) -> None:
    keys = [orjson.dumps(k).decode() for k in points]
    with store.transaction() as txn:
        txn.upsert(
            keys,
            np.zeros((len(keys), 2), np.float32),
            [orjson.dumps(p).decode() for p in points.values()],
        )


def found(store: SqliteStore, text: str, spec: FullTextSpec = SPEC) -> set[str]:
    match = match_expression(text)
    if match is None:
        return set()
    labels, _ = store.lexical(spec, match, 100)
    keys = dict(store.all_keys())
    return {orjson.loads(keys[label]) for label in labels.tolist()}


def declare(store: SqliteStore, spec: FullTextSpec | None = SPEC) -> None:
    with store.transaction() as txn:
        txn.set_full_text(spec)


def test_points_written_after_the_declaration_are_found_by_their_words(store: SqliteStore) -> None:
    declare(store)
    write(
        store,
        {"a": {"title": "Red running shoes", "tags": ["Café", {"x": "trail"}]}, "b": {"title": 7}},
    )
    assert found(store, "shoes") == {"a"}
    assert found(store, "cafe trail") == {"a"}  # diacritics folded; strings inside objects
    assert found(store, "7") == set()  # numbers are not text


def test_a_delete_or_an_update_removes_the_old_words(store: SqliteStore) -> None:
    declare(store)
    write(store, {"a": {"title": "red shoes"}, "b": {"title": "blue hat"}})
    write(store, {"a": {"title": "green boots"}})
    with store.transaction() as txn:
        txn.delete_keys([orjson.dumps("b").decode()])
    assert found(store, "red hat") == set()
    assert found(store, "boots") == {"a"}
    store._writer.execute("INSERT INTO ft(ft) VALUES('integrity-check')")


def test_a_rolled_back_write_leaves_no_words(store: SqliteStore) -> None:
    declare(store)

    def fail_after_writing() -> None:
        with store.transaction() as txn:
            txn.upsert(['"a"'], np.zeros((1, 2), np.float32), ['{"title": "ghost"}'])
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_after_writing()
    assert found(store, "ghost") == set()


def test_points_before_the_declaration_are_indexed_in_batches(store: SqliteStore) -> None:
    write(store, {f"p{i}": {"title": f"word{i} common"} for i in range(5)})
    declare(store)
    assert store.full_text_backlog() == (5, 5)
    write(store, {"new": {"title": "common fresh"}})  # written meanwhile: indexed at once
    assert found(store, "common") == {"new"}
    with store.transaction() as txn:
        assert txn.index_full_text(2)
    assert store.full_text_backlog() == (3, 6)
    with store.transaction() as txn:
        txn.delete_keys(['"p3"'])
    while True:
        with store.transaction() as txn:
            if not txn.index_full_text(2):
                break
    assert store.full_text_backlog() == (0, 5)
    assert found(store, "common") == {"p0", "p1", "p2", "p4", "new"}


def test_any_path_the_declaration_takes_is_indexed_as_data_not_sql(store: SqliteStore) -> None:
    # A quote in a field's name once ended the SQL string the path was written into: the
    # backlog never indexed (a syntax error each time), and the name could carry SQL.
    odd = "it's"
    sneaky = "x') IS NULL, (SELECT 'injected"
    spec = FullTextSpec.parse([odd, f"brand.{sneaky}"])
    write(store, {"old": {odd: "red shoes"}})
    declare(store, spec)
    write(store, {"new": {"brand": {sneaky: "green boots"}}})
    with store.transaction() as txn:
        assert not txn.index_full_text(10)  # the backlog: the point written before
    assert found(store, "shoes", spec) == {"old"}
    assert found(store, "boots", spec) == {"new"}
    assert found(store, "injected", spec) == set()


def test_the_declaration_survives_reopening(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    declare(store, FullTextSpec.parse({"fields": ["title"], "tokenizer": "trigram"}))
    write(store, {"a": {"title": "Wireless headphones"}})
    store.close()
    reopened = SqliteStore(tmp_path / "s.sqlite3")
    assert reopened.full_text is not None
    assert reopened.full_text.tokenizer == "trigram"
    assert found(reopened, "headphon", reopened.full_text) == {"a"}  # substring
    reopened.close()


def test_porter_stems_english_words(store: SqliteStore) -> None:
    spec = FullTextSpec.parse({"fields": ["title"], "tokenizer": "porter"})
    declare(store, spec)
    write(store, {"a": {"title": "running shoes"}})
    assert found(store, "run shoe", spec) == {"a"}


def test_weights_rank_a_title_match_above_a_tag_match(store: SqliteStore) -> None:
    declare(store)
    write(
        store, {"title": {"title": "lamp", "tags": ["x"]}, "tag": {"title": "x", "tags": ["lamp"]}}
    )
    labels, scores = store.lexical(SPEC, '"lamp"', 10)
    keys = dict(store.all_keys())
    assert [orjson.loads(keys[label]) for label in labels.tolist()] == ["title", "tag"]
    assert scores[0] > scores[1] > 0


@pytest.mark.parametrize(
    "declaration",
    [
        {"fields": []},
        {"fields": ["a", "a"]},
        {"fields": ["$x"]},
        {"fields": ['a"b']},
        {"fields": [{"path": "a", "weight": 0}]},
        {"fields": ["a"], "tokenizer": "icu"},
        "title",
    ],
)
def test_an_unusable_declaration_is_refused(declaration: object) -> None:
    with pytest.raises(InvalidFullText):
        FullTextSpec.parse(declaration)


def test_user_words_are_not_fts5_syntax() -> None:
    assert match_expression('NEAR(a b) AND "x" *') == '"NEAR(a" OR "b)" OR "AND" OR """x""" OR "*"'
    assert match_expression("a b", "all") == '"a" AND "b"'
    assert match_expression("a  b a", "phrase") == '"a b a"'
    assert match_expression("ru sh", "prefix") == '"ru"* OR "sh"*'
    assert match_expression("   ") is None
    assert match_expression(" ".join(f"w{i}" for i in range(500))).count(" OR ") == MAX_TOKENS - 1


def test_bad_fts5_syntax_asked_for_is_an_invalid_query(store: SqliteStore) -> None:
    declare(store)
    expression = match_expression("title: (a AND", "fts5")
    assert expression is not None
    with pytest.raises(InvalidQuery):
        store.lexical(SPEC, expression, 10)


# Besides those sent over HTTP: what JSON cannot carry (NUL, a lone surrogate) and more.
ODD = st.sampled_from(
    [*FTS5_ODD_WORDS, "'", "NEAR", "-", "+", "\x00", "\ud800", "a", " ", "\n", "c0:", "ft"]
)
QUERY_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(ODD, st.text(max_size=5)), max_size=30).map(" ".join),
    st.lists(ODD, max_size=30).map("".join),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=QUERY_TEXT, mode=st.sampled_from(["any", "all", "phrase", "prefix"]))
def test_no_query_text_is_an_error(store: SqliteStore, text: str, mode: str) -> None:
    if store.full_text is None:
        declare(store)
        write(store, {"a": {"title": "the quick brown fox 中文 🙂", "tags": ["NEAR", "AND"]}})
    match = match_expression(text, mode)  # type: ignore[arg-type]
    if match is not None:
        store.lexical(SPEC, match, 10)


def test_a_100kb_query_is_answered(store: SqliteStore) -> None:
    declare(store)
    write(store, {"a": {"title": "needle"}})
    assert found(store, "hay " * 25_000 + "needle") == {"a"}


def test_sqlite_has_fts5() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(a, tokenize = 'trigram')")
