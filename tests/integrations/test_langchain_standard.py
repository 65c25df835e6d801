"""LangChain's own standard suite for vector stores, sync and async, against a real vecserve
with the suite's embeddings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from tests.integrations.conftest import READ_WRITE, fresh_name, unpooled_async_client
from tests.support.server import Server
from vecserve_client import Client, CollectionNotFound
from vecserve_client.integrations.langchain import VecserveVectorStore

# The suite's async tests are plain coroutines: run them under anyio.
pytestmark = pytest.mark.anyio


class TestVecserveVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, vecserve: Server) -> Iterator[VecserveVectorStore]:  # type: ignore[override]
        with Client(vecserve.url, api_key=READ_WRITE) as client:
            store = VecserveVectorStore(
                fresh_name("lc"),
                self.get_embeddings(),
                client=client,
                async_client=unpooled_async_client(vecserve),
            )
            yield store
            with contextlib.suppress(CollectionNotFound):
                client.delete_collection(store.collection_name)
