"""Request ids, as the gateway gives them."""

from __future__ import annotations

import re

import pytest

from service.gateway import request_id


def test_a_sane_client_id_is_kept() -> None:
    assert request_id(b"abc-123") == "abc-123"


@pytest.mark.parametrize("sent", [b"", b"x" * 129, b"tab\there", b"\x00"])
def test_a_missing_or_odd_client_id_is_replaced_by_a_fresh_one(sent: bytes) -> None:
    assert re.fullmatch("[0-9a-f]{32}", request_id(sent))


def test_fresh_ids_do_not_repeat() -> None:
    assert len({request_id(b"") for _ in range(10_000)}) == 10_000
