"""Error messages say what is wrong in the user's terms: no framework prefixes, the
setting that differs, the operators there are, a missing key told from a wrong one, and
how images are sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.app import create_app
from service.settings import Settings

KEY = "error-message-test-key-0123"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, device="cpu", api_keys=[SecretStr(KEY)])
    with TestClient(create_app(settings), headers={"X-API-Key": KEY}) as c:
        yield c


def error(response: object) -> tuple[int, str, str]:
    body = response.json()  # type: ignore[attr-defined]
    return response.status_code, body["error"], body["message"]  # type: ignore[attr-defined]


def test_a_check_of_the_whole_body_is_its_message_alone(client: TestClient) -> None:
    client.put("/collections/c", json={"dim": 2})
    both = client.post("/collections/c/search", json={"vector": [1, 0], "id": 1})
    assert error(both) == (
        422,
        "InvalidRequest",
        "give exactly one of vector, vector_b64, text, image or id",
    )
    neither = client.post("/collections/c/points/delete", json={})
    assert error(neither)[2] == "give exactly one of ids or filter"


def test_a_check_of_one_field_names_the_field(client: TestClient) -> None:
    client.put("/collections/c", json={"dim": 2})
    point = client.put("/collections/c/points", json={"points": [{"id": 1}]})
    assert error(point) == (
        422,
        "InvalidRequest",
        "points.0: give exactly one of vector, vector_b64, text or image",
    )
    wrong_type = client.post("/collections/c/search", json={"vector": [1, 0], "k": "3"})
    assert error(wrong_type)[2] == "k: Input should be a valid integer"


def test_creating_a_collection_again_with_its_configuration_is_no_error(
    client: TestClient,
) -> None:
    assert client.put("/collections/c", json={"dim": 4, "index": "flat"}).status_code == 201
    again = client.put("/collections/c", json={"dim": 4, "index": "flat"})
    assert again.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "name", "message"),
    [
        pytest.param(
            "PUT",
            "/collections/c",
            {"dim": 8, "metric": "l2", "index": "flat"},
            409,
            "CollectionExists",
            "collection 'c' already exists with another configuration: "
            "dim is 4, not 8; metric is cosine, not l2",
            id="collection exists says which settings differ",
        ),
        pytest.param(
            "POST",
            "/collections/c/search",
            {"vector": [1, 0, 0, 0], "filter": {"a": {"$regex": "x"}}},
            422,
            "InvalidFilter",
            "unknown operator '$regex'; the operators on a field are "
            "$eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists, $not",
            id="an unknown filter operator lists the valid ones",
        ),
    ],
)
def test_a_rejected_request_says_what_is_wrong(
    client: TestClient,
    method: str,
    path: str,
    body: dict[str, object],
    status: int,
    name: str,
    message: str,
) -> None:
    assert client.put("/collections/c", json={"dim": 4, "index": "flat"}).status_code == 201
    response = client.request(method, path, json=body)
    assert error(response)[:2] == (status, name)
    assert error(response)[2] == message


def test_a_missing_key_and_a_wrong_key_are_told_apart(client: TestClient) -> None:
    missing = client.get("/collections", headers={"X-API-Key": ""})
    wrong = client.get("/collections", headers={"X-API-Key": "not-a-key-of-this-server"})
    assert error(missing) == (
        401,
        "Unauthorized",
        "no API key was sent: send `Authorization: Bearer KEY` or `X-API-Key: KEY`",
    )
    assert error(wrong) == (401, "Unauthorized", "the API key sent is not valid on this server")


@pytest.mark.parametrize(
    "image", ["/srv/photos/cat.jpg", "cat.png", "https://example.org/cat", "C:\\cat.bmp"]
)
def test_an_image_given_as_a_path_or_url_says_images_are_sent_as_base64(
    client: TestClient, image: str
) -> None:
    client.put("/collections/c", json={"dim": 2})
    status, name, message = error(client.post("/collections/c/search", json={"image": image}))
    assert (status, name) == (422, "InvalidEmbedderInput")
    assert "images are sent as base64" in message


def test_an_image_that_is_not_base64_nor_a_path_says_so(client: TestClient) -> None:
    client.put("/collections/c", json={"dim": 2})
    response = client.post("/collections/c/search", json={"image": "not base64!"})
    assert error(response) == (422, "InvalidEmbedderInput", "image is not valid base64")
