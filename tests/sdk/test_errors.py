"""Errors: every name the server sends comes back as the exception of that name."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import indexer.errors
import service.errors
import vecserve_client
from tests.support.server import free_port
from vecserve_client import (
    APIError,
    AsyncClient,
    Client,
    CollectionNotFound,
    ConnectError,
    InternalError,
    NotFound,
    RateLimited,
    Retries,
    ServerError,
    TimeoutException,
    TransportError,
)
from vecserve_client._exceptions import error_class

SERVICE = Path(service.errors.__file__).parent
# Names the server falls back on when it has nothing more specific; the SDK falls back
# on the status for them too.
GENERIC = {"VecserveError", "HttpError"}
ALIASES = {"PayloadTooLarge": "RequestTooLarge"}  # the framework's name for a 413
# Engine errors never raised while serving a request: by batch jobs in the command line,
# or when an engine opens its data folder (the server's start).
NEVER_SENT = {"JobFailed", "DataFolderInUse"}


def server_error_names() -> dict[str, int]:
    """Every error name the server can send, with its status: the engine's and the
    service's error classes, and the names passed to ``error_response`` in its code."""
    names: dict[str, int] = {}
    for module in (indexer.errors, service.errors):
        for cls in vars(module).values():
            if (
                inspect.isclass(cls)
                and issubclass(cls, indexer.errors.VecserveError)
                and cls.__name__ not in NEVER_SENT
            ):
                names[cls.__name__] = cls.status_code
    for status, name in service.errors._HTTP_NAMES.items():
        names[name] = status
    for path in SERVICE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "error_response"
                and len(node.args) >= 3
                and all(isinstance(a, ast.Constant) for a in node.args[1:3])
            ):
                status, name = (a.value for a in node.args[1:3])
                names[name] = status
    return names


def test_the_server_sends_the_names_this_test_expects() -> None:
    names = server_error_names()
    assert {"CollectionNotFound", "InvalidRequest", "Unauthorized", "RequestTooLarge"} <= set(names)


@pytest.mark.parametrize(("name", "status"), sorted(server_error_names().items()))
def test_every_error_name_the_server_sends_has_its_exception(name: str, status: int) -> None:
    cls = error_class(name, status)
    if name not in GENERIC:
        assert cls.__name__ == ALIASES.get(name, name)
        assert cls.__name__ in vecserve_client.__all__
    # A name's class is always one that ``except`` on its status class catches.
    assert issubclass(cls, error_class(None, status))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, NotFound),
        (429, RateLimited),
        (418, APIError),
        (500, InternalError),
        (502, ServerError),
    ],
)
def test_an_unknown_name_falls_back_on_the_status(status: int, expected: type) -> None:
    assert error_class("SomethingNewer", status) is expected


def test_an_error_keeps_status_name_message_request_id_and_response(
    mock_client: Callable[..., Client],
) -> None:
    body = {"error": "CollectionNotFound", "message": "no such thing", "request_id": "abc"}
    client = mock_client(lambda request: httpx.Response(404, json=body))
    with pytest.raises(CollectionNotFound) as caught:
        client.get_collection("x")
    error = caught.value
    assert (error.status_code, error.name, error.message) == (
        404,
        "CollectionNotFound",
        body["message"],
    )
    assert error.request_id == "abc"
    assert error.response is not None
    assert error.response.json() == body
    assert str(error) == "CollectionNotFound (404): no such thing [request abc]"


def test_an_error_page_that_is_not_json_falls_back_on_the_status(
    mock_client: Callable[..., Client],
) -> None:
    page = httpx.Response(502, text="<html>bad gateway</html>", headers={"x-request-id": "p1"})
    client = mock_client(lambda request: page)
    with pytest.raises(ServerError) as caught:
        client.list_collections()
    assert caught.value.name is None
    assert caught.value.request_id == "p1"
    assert "bad gateway" in caught.value.message


def test_a_timeout_raises_timeout_exception(mock_client: Callable[..., Client]) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    with pytest.raises(TimeoutException) as caught:
        mock_client(slow).get_collection("x")
    assert isinstance(caught.value, TransportError)
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


def test_an_unreachable_server_raises_connect_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    retries = Retries(max_retries=1, backoff=0.001)
    with Client(url, retries=retries) as client, pytest.raises(ConnectError):
        client.list_collections()


@pytest.mark.anyio
async def test_an_unreachable_server_raises_connect_error_in_the_async_client() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    retries = Retries(max_retries=1, backoff=0.001)
    async with AsyncClient(url, retries=retries) as client:
        with pytest.raises(ConnectError):
            await client.list_collections()
