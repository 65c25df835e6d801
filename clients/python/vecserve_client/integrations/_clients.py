"""What the LangChain and LlamaIndex stores share: the clients they work through, and the
calls that treat a collection never written to as an empty one."""

from __future__ import annotations

import contextlib
from typing import Any, TypedDict, TypeVar, Unpack

from vecserve_client import AsyncClient, Client, CollectionNotFound, Hit


class StoreConnection(TypedDict, total=False):
    """How a store reaches the server, the keyword arguments every store takes.

    Attributes:
        url: the server's base URL; the store then opens (and owns) a ``Client`` and an
            ``AsyncClient`` on it. Or give them as ``client`` / ``async_client``.
        api_key: the API key for the clients opened from ``url``.
        client: a ``Client``, for the store's synchronous methods.
        async_client: an ``AsyncClient``, for its asynchronous ones.
    """

    url: str | None
    api_key: str | None
    client: Client | None
    async_client: AsyncClient | None


class StoreClients:
    """A store's ``Client`` (for its synchronous methods) and ``AsyncClient`` (for its
    asynchronous ones): opened from ``url``, and then owned, or given.

    Raises:
        ValueError: no client and no ``url``.
    """

    def __init__(self, **connection: Unpack[StoreConnection]) -> None:
        client, async_client = connection.get("client"), connection.get("async_client")
        self.owned: tuple[Client | None, AsyncClient | None] = (None, None)
        if (url := connection.get("url")) is not None:
            api_key = connection.get("api_key")
            client = client or Client(url, api_key=api_key)
            async_client = async_client or AsyncClient(url, api_key=api_key)
            self.owned = (client, async_client)
        if client is None and async_client is None:
            raise ValueError("give url, client or async_client")
        self._client = client
        self._async_client = async_client

    @property
    def client(self) -> Client:
        return _given(self._client, "Client", "client")

    @property
    def async_client(self) -> AsyncClient:
        return _given(self._async_client, "AsyncClient", "async_client")

    def search(self, collection: str, **options: Any) -> list[Hit]:
        """``Client.search``; no hits from a collection that was never written to."""
        try:
            return self.client.search(collection, **options)
        except CollectionNotFound:
            return []

    async def asearch(self, collection: str, **options: Any) -> list[Hit]:
        """``AsyncClient.search``; no hits from a collection that was never written to."""
        try:
            return await self.async_client.search(collection, **options)
        except CollectionNotFound:
            return []

    def delete(self, collection: str, ids: list[str] | None, **options: Any) -> None:
        """``Client.delete``; nothing to delete in a collection never written to."""
        with contextlib.suppress(CollectionNotFound):
            self.client.delete(collection, ids, **options)

    async def adelete(self, collection: str, ids: list[str] | None, **options: Any) -> None:
        """``AsyncClient.delete``; nothing to delete in a collection never written to."""
        with contextlib.suppress(CollectionNotFound):
            await self.async_client.delete(collection, ids, **options)


class UsesStoreClients:
    """The ``client`` and ``async_client`` properties of a store that keeps its
    :class:`StoreClients` in ``_clients``."""

    _clients: StoreClients

    @property
    def client(self) -> Client:
        """The synchronous client.

        Raises:
            ValueError: the store was given only an ``AsyncClient``.
        """
        return self._clients.client

    @property
    def async_client(self) -> AsyncClient:
        """The asynchronous client.

        Raises:
            ValueError: the store was given only a ``Client``.
        """
        return self._clients.async_client


Given = TypeVar("Given")


def _given(value: Given | None, what: str, argument: str) -> Given:
    if value is None:
        raise ValueError(f"this store has no {what}: give {argument}= or url=")
    return value


def candidate_vectors(hits: list[Hit]) -> list[list[float]]:
    """The vectors of an MMR query's candidates (fetched with ``with_vectors``)."""
    return [hit.vector.tolist() for hit in hits if hit.vector is not None]
