"""The query plan's models that take exactly one of a set of fields."""

from __future__ import annotations

import pytest

from indexer.errors import InvalidQuery
from indexer.query.plan import DenseQuery, QueryPlan, Rerank, Stage


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({}, "a stage is either dense or lexical"),
        ({"dense": {"text": "a"}, "lexical": {"text": "a"}}, "a stage is either dense or lexical"),
        ({"dense": {}}, "a dense stage takes exactly one of vector, text, image, point_id"),
        (
            {"dense": {"text": "a", "point_id": 3}},
            "a dense stage takes exactly one of vector, text, image, point_id",
        ),
    ],
)
def test_a_stage_with_none_or_several_kinds_is_refused_with_a_message(
    stage: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidQuery, match=message):
        QueryPlan.parse({"prefetch": [stage]})


@pytest.mark.parametrize("rerank", [{}, {"mmr": {}, "cross_encoder": {"model": "m"}}])
def test_a_rerank_takes_exactly_one_method(rerank: dict[str, object]) -> None:
    with pytest.raises(InvalidQuery, match="a rerank is either cross_encoder or mmr"):
        QueryPlan.parse({"prefetch": [{"lexical": {"text": "a"}}], "rerank": rerank})


def test_each_model_takes_one_of_its_fields_and_says_so_in_its_schema() -> None:
    assert Stage.model_validate({"lexical": {"text": "a"}}).kind == "lexical"
    assert DenseQuery.model_validate({"point_id": 3}).point_id == 3
    for model, fields in (
        (Stage, ["dense", "lexical"]),
        (Rerank, ["cross_encoder", "mmr"]),
        (DenseQuery, ["vector", "text", "image", "point_id"]),
    ):
        assert [option["required"] for option in model.model_json_schema()["oneOf"]] == [
            [field] for field in fields
        ]
