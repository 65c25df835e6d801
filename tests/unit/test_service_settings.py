"""Server settings that guard access, and how filter depth is counted."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from service.limits import filter_depth
from service.settings import Settings, client_api_key

KEY_A = "a-key-0123456789abcdef"
KEY_B = "b-key-0123456789abcdef"


def secrets(keys: list[SecretStr]) -> list[str]:
    return [k.get_secret_value() for k in keys]


@pytest.mark.parametrize(
    "value", [f"{KEY_A},{KEY_B}", f" {KEY_A} , {KEY_B} ,", f'["{KEY_A}", "{KEY_B}"]']
)
def test_api_keys_come_from_the_environment_comma_separated_or_as_json(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("VECSERVE_API_KEYS", value)
    assert secrets(Settings().api_keys) == [KEY_A, KEY_B]


@pytest.mark.parametrize(
    ("environ", "sent"),
    [
        ({"VECSERVE_API_KEY": KEY_A, "VECSERVE_API_KEYS": KEY_B}, KEY_A),
        ({"VECSERVE_API_KEYS": f"{KEY_B},{KEY_A}"}, KEY_B),
        ({"VECSERVE_API_KEYS": f'["{KEY_B}"]'}, KEY_B),
        ({"VECSERVE_API_KEY": " ", "VECSERVE_API_KEYS": ""}, None),
    ],
)
def test_a_command_sends_its_own_key_else_the_first_of_the_servers(
    environ: dict[str, str], sent: str | None
) -> None:
    assert client_api_key(environ) == sent


def test_keys_are_kept_out_of_reprs() -> None:
    assert KEY_A not in repr(Settings(api_keys=[SecretStr(KEY_A)]))


@pytest.mark.parametrize("weak", ["short", "has a space in it ok", "comma,0123456789abcdef"])
def test_weak_keys_are_refused(weak: str) -> None:
    with pytest.raises(ValidationError, match="API key"):
        Settings(read_only_api_keys=[SecretStr(weak)])


def test_a_key_cannot_be_both_read_write_and_read_only() -> None:
    with pytest.raises(ValidationError, match="both"):
        Settings(api_keys=[SecretStr(KEY_A)], read_only_api_keys=[SecretStr(KEY_A)])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_needs_no_keys(host: str) -> None:
    assert not Settings(host=host).auth_enabled


def test_a_public_address_needs_keys_or_an_explicit_opt_out() -> None:
    with pytest.raises(ValidationError, match="without API keys"):
        Settings(host="0.0.0.0")
    assert Settings(host="0.0.0.0", api_keys=[SecretStr(KEY_A)]).auth_enabled
    assert Settings(host="0.0.0.0", read_only_api_keys=[SecretStr(KEY_A)]).auth_enabled
    assert not Settings(host="0.0.0.0", allow_no_auth=True).auth_enabled


@pytest.mark.parametrize(
    ("spec", "depth"),
    [
        ({"a": 1}, 1),
        ({"a.b": {"$gt": 1}}, 2),
        ({"$and": [{"a": 1}, {"b.c.d": 1}]}, 4),
        ({"$not": {"a": {"$not": {"$in": [1]}}}}, 3),
        ({"$or": "not a list"}, 0),  # malformed: left for the filter compiler to name
    ],
)
def test_filter_depth_counts_logical_levels_and_path_segments(spec: object, depth: int) -> None:
    assert filter_depth(spec, stop_after=16) == depth


def test_filter_depth_stops_walking_a_hostile_filter_early() -> None:
    spec: dict[str, object] = {"a": 1}
    for _ in range(100_000):
        spec = {"$not": spec}
    assert filter_depth(spec, stop_after=8) == 9
