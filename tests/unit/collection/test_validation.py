"""Checks on k and payloads."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from indexer.collection.validation import MAX_K, all_finite, check_k, payload_json
from indexer.errors import InvalidK, InvalidPayload


@pytest.mark.parametrize("k", [1, MAX_K, np.int64(5)])
def test_k_in_range_is_taken_as_an_int(k: object) -> None:
    assert check_k(k) == int(k)  # type: ignore[call-overload]
    assert type(check_k(k)) is int


@pytest.mark.parametrize("k", [0, MAX_K + 1, True, 2.0, "3", None])
def test_k_out_of_range_or_not_an_integer_is_refused(k: object) -> None:
    with pytest.raises(InvalidK):
        check_k(k)


def test_payloads_become_json_numpy_values_included() -> None:
    assert payload_json(None, 0) == "{}"
    text = payload_json({"a": [1, None], "v": np.arange(2), "f": np.float32(0.5)}, 0)
    assert orjson.loads(text) == {"a": [1, None], "v": [0, 1], "f": 0.5}


@pytest.mark.parametrize(
    "payload",
    [{"x": math.nan}, {"x": [1.0, math.inf]}, {"x": {"y": np.float64("nan")}}],
)
def test_payloads_with_nan_or_infinity_are_refused(payload: dict[str, object]) -> None:
    with pytest.raises(InvalidPayload, match="payload 3 holds NaN"):
        payload_json(payload, 3)


@pytest.mark.parametrize("payload", [[1], "text", {"x": object()}])
def test_a_payload_that_is_not_a_json_object_is_refused(payload: object) -> None:
    with pytest.raises(InvalidPayload, match="payload 1"):
        payload_json(payload, 1)  # type: ignore[arg-type]


def test_all_finite_looks_into_arrays_lists_and_objects() -> None:
    assert all_finite({"a": [1.0, (2.0, "x")], "b": np.ones(3), "c": None})
    assert not all_finite({"a": [{"b": np.array([1.0, np.inf])}]})
