"""Payload field indexes through the SDK: declared at create or later, built in the
background for the points already there, answering the filters on them."""

from __future__ import annotations

import time

import pytest

from vecserve_client import Client, InvalidPayloadIndex, InvalidRequest

POINTS = 40


def fill(client: Client, name: str) -> None:
    vectors = [[float(i), 1.0] for i in range(POINTS)]
    payloads = [
        {"color": ["red", "blue"][i % 2], "price": i, "tags": ["a", "b"] if i % 4 else ["c"]}
        for i in range(POINTS)
    ]
    client.upsert(name, list(range(POINTS)), vectors, payloads=payloads)


def wait_ready(client: Client, name: str) -> dict[str, dict[str, object]]:
    deadline = time.monotonic() + 10  # the points already there are indexed in the background
    while True:
        fields = client.get_collection(name).payload_indexes
        if all(f["state"] == "ready" for f in fields.values()):
            return fields
        assert time.monotonic() < deadline, fields
        time.sleep(0.01)


def matching(client: Client, name: str, filter: dict[str, object]) -> set[object]:
    hits = client.search(name, [0.0, 1.0], k=POINTS, filter=filter, with_payload=False)
    return {h.id for h in hits}


def test_fields_declared_at_create_answer_filters(client: Client, name: str) -> None:
    info = client.create_collection(
        name, 2, metric="l2", payload_indexes={"color": "keyword", "price": "number"}
    )
    assert set(info.payload_indexes) == {"color", "price"}
    assert info.payload_indexes["price"]["type"] == "number"
    fill(client, name)
    fields = wait_ready(client, name)
    assert fields["color"]["indexed"] == fields["color"]["total"] == POINTS
    spec = {"color": "red", "price": {"$gte": 10, "$lt": 20}}
    assert matching(client, name, spec) == {10, 12, 14, 16, 18}
    assert client.delete(name, filter={"price": {"$gte": 30}}) == 10
    assert matching(client, name, {"color": {"$ne": "red"}}) == set(range(1, 30, 2))


def test_fields_declared_later_are_built_for_the_points_there(client: Client, name: str) -> None:
    client.create_collection(name, 2, metric="l2")
    fill(client, name)
    before = matching(client, name, {"tags": {"$in": ["c"]}})
    info = client.create_payload_index(name, "tags", "keyword")
    assert info.payload_indexes["tags"]["type"] == "keyword"
    assert wait_ready(client, name)["tags"]["indexed"] == POINTS
    assert matching(client, name, {"tags": {"$in": ["c"]}}) == before == set(range(0, POINTS, 4))
    assert client.drop_payload_index(name, "tags").payload_indexes == {}
    assert client.drop_payload_index(name, "tags").payload_indexes == {}  # harmless again


def test_bad_declarations_raise_typed_errors(client: Client, name: str) -> None:
    client.create_collection(name, 2)
    with pytest.raises(InvalidPayloadIndex):
        client.create_payload_index(name, "$price", "number")  # the engine checks paths
    with pytest.raises(InvalidRequest):  # the body does not match the API's schema
        client.create_payload_index(name, "price", "text")  # type: ignore[arg-type]
    assert client.get_collection(name).payload_indexes == {}
