"""Point ids are checked before they reach the store: a string id is text that UTF-8 (and
so JSON and SQLite) can hold."""

from __future__ import annotations

import numpy as np
import pytest

from indexer import Engine, InvalidId
from indexer.points import validate_id


@pytest.mark.parametrize("point_id", ["\ud800", "a\udc00b", "é\udfff"])
def test_a_string_id_holding_a_lone_surrogate_is_an_invalid_id(point_id: str) -> None:
    with pytest.raises(InvalidId, match="not valid Unicode"):
        validate_id(point_id)


@pytest.mark.parametrize("point_id", ["a", "é", "日本語", "🙂", "\U0010ffff", "a\x00b"])
def test_any_other_text_is_a_valid_string_id(point_id: str) -> None:
    assert validate_id(point_id) == point_id


def test_a_collection_refuses_a_surrogate_id_and_writes_nothing(engine: Engine) -> None:
    collection = engine.create_collection("c", dim=2, metric="l2")
    with pytest.raises(InvalidId):
        collection.upsert(["ok", "\ud800"], np.ones((2, 2)))
    assert collection.count() == 0
    with pytest.raises(InvalidId):
        collection.get(["\ud800"])
    with pytest.raises(InvalidId):
        collection.delete(["\ud800"])
