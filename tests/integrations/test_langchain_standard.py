"""LangChain's own standard suite for vector stores, sync and async, against a real vecserve
with the suite's embeddings."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import httpx
import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from tests.integrations.conftest import READ_WRITE
from tests.support.server import Server
from vecserve_client import AsyncClient, Client, CollectionNotFound
from vecserve_client.integrations.langchain import VecserveVectorStore

# The suite's async tests are plain coroutines: run them under anyio.
pytestmark = pytest.mark.anyio


class TestVecserveVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, vecserve: Server) -> Iterator[VecserveVectorStore]:  # type: ignore[override]
        # Each async test runs on an event loop of its own: an async client that keeps no
        # connection open between requests needs no closing on that loop.
        no_pool = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
        with Client(vecserve.url, api_key=READ_WRITE) as client:
            store = VecserveVectorStore(
                f"lc{uuid.uuid4().hex[:12]}",
                self.get_embeddings(),
                client=client,
                async_client=AsyncClient(vecserve.url, api_key=READ_WRITE, transport=no_pool),
            )
            yield store
            with contextlib.suppress(CollectionNotFound):
                client.delete_collection(store.collection_name)
