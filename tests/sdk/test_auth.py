"""API keys: the SDK sends its key as a bearer token and raises Unauthorized/Forbidden."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from anyio.from_thread import BlockingPortal

from tests.support.server import NewServer, Server
from vecserve_client import AsyncClient, Client, Forbidden, Unauthorized

from .conftest import BlockingAsyncClient

READ_WRITE = "rw-key-0123456789abcdef"
READ_ONLY = "ro-key-0123456789abcdef"


def test_the_api_key_goes_as_a_bearer_token(mock_client: Callable[..., Client]) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"collections": []})

    mock_client(answer, api_key="secret-key", headers={"x-team": "search"}).list_collections()
    assert seen[0].headers["authorization"] == "Bearer secret-key"
    assert seen[0].headers["x-team"] == "search"
    assert seen[0].headers["user-agent"].startswith("vecserve-client/")


@pytest.fixture(scope="module")
def keyed_server(new_server: NewServer) -> Iterator[Server]:
    env = {"VECSERVE_API_KEYS": READ_WRITE, "VECSERVE_READ_ONLY_API_KEYS": READ_ONLY}
    with new_server(env) as server:
        yield server


@pytest.fixture(params=["sync", "async"])
def connect(
    request: pytest.FixtureRequest, keyed_server: Server, portal: BlockingPortal
) -> Iterator[Callable[[str | None], Client]]:
    """Make a client of each flavour on the keyed server, with the given key."""
    made: list[Callable[[], object]] = []

    def make(key: str | None) -> Client:
        if request.param == "sync":
            client = Client(keyed_server.url, api_key=key)
            made.append(client.close)
            return client
        async_client = AsyncClient(keyed_server.url, api_key=key)
        made.append(lambda: portal.call(async_client.close))
        return BlockingAsyncClient(async_client, portal)

    yield make
    for close in made:
        close()


def test_without_a_key_the_server_answers_unauthorized(
    connect: Callable[[str | None], Client],
) -> None:
    client = connect(None)
    with pytest.raises(Unauthorized) as caught:
        client.list_collections()
    assert caught.value.status_code == 401
    assert client.health().ready  # health checks are open
    with pytest.raises(Unauthorized):
        connect("wrong-key-0123456789abcdef").list_collections()


def test_a_read_only_key_reads_but_may_not_write(connect: Callable[[str | None], Client]) -> None:
    writer, reader = connect(READ_WRITE), connect(READ_ONLY)
    writer.create_collection("keyed", 2)
    writer.upsert("keyed", [1], [[1.0, 0.0]])
    assert reader.search("keyed", [1.0, 0.0], k=1)[0].id == 1
    assert "keyed" in reader.list_collections()
    with pytest.raises(Forbidden) as caught:
        reader.upsert("keyed", [2], [[0.0, 1.0]])
    assert (caught.value.status_code, caught.value.name) == (403, "Forbidden")
    writer.delete_collection("keyed")
