"""Collections through the SDK: create, list, describe, drop."""

from __future__ import annotations

import pytest

from vecserve_client import (
    Client,
    CollectionExists,
    CollectionInfo,
    CollectionNotFound,
    InvalidInput,
    InvalidName,
)


def test_create_collection_returns_its_configuration(client: Client, name: str) -> None:
    info = client.create_collection(name, 8, metric="l2", index="flat")
    assert isinstance(info, CollectionInfo)
    assert (info.name, info.dim, info.metric, info.count) == (name, 8, "l2", 0)
    assert info.index["kind"] == "flat"
    assert info.serving["family"] == "flat"


def test_create_collection_is_idempotent_and_refuses_another_configuration(
    client: Client, name: str
) -> None:
    first = client.create_collection(name, 8, metric="dot")
    assert client.create_collection(name, 8, metric="dot") == first
    with pytest.raises(CollectionExists) as caught:
        client.create_collection(name, 16, metric="dot")
    error = caught.value
    assert (error.status_code, error.name) == (409, "CollectionExists")
    assert error.request_id
    assert error.response is not None
    assert error.response.headers["x-request-id"] == error.request_id


def test_index_spec_may_be_a_dict_and_is_checked_by_the_server(client: Client, name: str) -> None:
    info = client.create_collection(name, 8, index={"kind": "hnsw", "hnsw_m": 16})
    assert (info.index["kind"], info.index["hnsw_m"]) == ("hnsw", 16)
    with pytest.raises(InvalidInput):  # InvalidRequest: the body's schema checks it
        client.create_collection(f"{name}x", 8, index={"kind": "hnsw", "hnsw_m": 1})


def test_list_get_and_delete_collection(client: Client, name: str) -> None:
    client.create_collection(name, 4)
    assert name in client.list_collections()
    assert client.get_collection(name).dim == 4
    client.delete_collection(name)
    assert name not in client.list_collections()
    with pytest.raises(CollectionNotFound) as caught:
        client.get_collection(name)
    assert caught.value.status_code == 404
    with pytest.raises(CollectionNotFound):
        client.delete_collection(name)


def test_names_are_checked_by_the_server(client: Client) -> None:
    with pytest.raises(InvalidName):
        client.create_collection("not a name!", 4)
