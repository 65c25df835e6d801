"""The LlamaIndex vector store end to end: a VectorStoreIndex over a real vecserve, queried
with metadata filters and in MMR mode, its nodes coming back with their text and metadata."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.core.vector_stores.types import VectorStoreQueryMode

from tests.integrations.conftest import fresh_name, unpooled_async_client
from tests.support.server import Server
from vecserve_client import Client
from vecserve_client.integrations.llamaindex import VecserveVectorStore, to_vecserve_filter

pytestmark = pytest.mark.anyio

DIM = 64


class HashingEmbedding(BaseEmbedding):
    """Bag of words hashed into DIM buckets, unit length: texts sharing words are near,
    deterministically, with no model to download."""

    def _embed(self, text: str) -> list[float]:
        vector = np.zeros(DIM)
        for word in re.findall(r"[a-z]+", text.lower()):
            vector[zlib.crc32(word.encode()) % DIM] += 1.0
        norm = np.linalg.norm(vector)
        return (vector / norm if norm else vector).tolist()  # type: ignore[no-any-return]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed(text)


def node(node_id: str, doc: str, text: str, **metadata: object) -> TextNode:
    return TextNode(
        id_=node_id,
        text=text,
        metadata=metadata,
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)},
    )


NODES = [
    node("n1", "doc-a", "vecserve stores vectors in sqlite", topic="storage", year=2024),
    node(
        "n2", "doc-a", "faiss indexes answer nearest neighbour queries", topic="search", year=2025
    ),
    node("n3", "doc-b", "apple pie needs apples and cinnamon", topic="food", year=2023),
    node(
        "n4", "doc-b", "bread needs flour water and yeast", topic="food", year=2025, tags=["bake"]
    ),
]


@pytest.fixture
def store(vecserve: Server, client: Client) -> Iterator[VecserveVectorStore]:
    store = VecserveVectorStore(
        fresh_name("li"), client=client, async_client=unpooled_async_client(vecserve)
    )
    yield store
    store.clear()


@pytest.fixture
def index(store: VecserveVectorStore) -> VectorStoreIndex:
    return VectorStoreIndex(
        [n.model_copy() for n in NODES],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=HashingEmbedding(),
    )


def test_index_nodes_come_back_with_their_text_metadata_and_document(
    index: VectorStoreIndex,
) -> None:
    found = index.as_retriever(similarity_top_k=2).retrieve("how do apples make a pie")
    top = found[0].node
    assert isinstance(top, TextNode)
    assert (top.node_id, top.text, top.metadata, top.ref_doc_id) == (
        "n3",
        "apple pie needs apples and cinnamon",
        {"topic": "food", "year": 2023},
        "doc-b",
    )
    assert found[0].score is not None
    assert found[0].score > found[1].score  # type: ignore[operator]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (MetadataFilters(filters=[MetadataFilter(key="topic", value="food")]), ["n3", "n4"]),
        (
            MetadataFilters(
                filters=[MetadataFilter(key="year", value=2025, operator=FilterOperator.GTE)]
            ),
            ["n2", "n4"],
        ),
        (
            MetadataFilters(
                filters=[
                    MetadataFilter(key="topic", value="food"),
                    MetadataFilter(key="year", value=2024, operator=FilterOperator.LT),
                ]
            ),
            ["n3"],
        ),
        (
            MetadataFilters(
                filters=[
                    MetadataFilter(key="topic", value="storage"),
                    MetadataFilter(key="topic", value="search"),
                ],
                condition=FilterCondition.OR,
            ),
            ["n1", "n2"],
        ),
        (
            MetadataFilters(
                filters=[MetadataFilter(key="topic", value="food")], condition=FilterCondition.NOT
            ),
            ["n1", "n2"],
        ),
        (
            MetadataFilters(
                filters=[
                    MetadataFilter(key="topic", value=["search", "x"], operator=FilterOperator.IN)
                ]
            ),
            ["n2"],
        ),
        (
            MetadataFilters(
                filters=[MetadataFilter(key="tags", value="bake", operator=FilterOperator.CONTAINS)]
            ),
            ["n4"],
        ),
    ],
)
def test_retriever_filters_by_metadata(
    index: VectorStoreIndex, filters: MetadataFilters, expected: list[str]
) -> None:
    found = index.as_retriever(similarity_top_k=10, filters=filters).retrieve("needs")
    assert sorted(n.node.node_id for n in found) == expected


async def test_async_retriever_filters_and_round_trips(index: VectorStoreIndex) -> None:
    filters = MetadataFilters(filters=[MetadataFilter(key="topic", value="search")])
    found = await index.as_retriever(similarity_top_k=5, filters=filters).aretrieve("faiss")
    assert [(n.node.node_id, n.node.get_content()) for n in found] == [
        ("n2", "faiss indexes answer nearest neighbour queries")
    ]


def test_deleting_a_document_deletes_its_nodes_only(
    index: VectorStoreIndex, store: VecserveVectorStore
) -> None:
    index.delete_ref_doc("doc-b")
    assert sorted(n.node_id for n in store.get_nodes(filters=MetadataFilters(filters=[]))) == [
        "n1",
        "n2",
    ]
    assert [n.node_id for n in store.get_nodes(["n3", "n1"])] == ["n1"]
    store.clear()
    assert store.get_nodes(filters=MetadataFilters(filters=[])) == []


async def test_async_add_query_and_delete_go_through_the_async_client(
    store: VecserveVectorStore,
) -> None:
    embed = HashingEmbedding()
    nodes = [n.model_copy(update={"embedding": embed._embed(n.text)}) for n in NODES]
    assert await store.async_add(nodes) == ["n1", "n2", "n3", "n4"]
    query = VectorStoreQuery(query_embedding=embed._embed("bread flour"), similarity_top_k=1)
    assert (await store.aquery(query)).ids == ["n4"]
    await store.adelete("doc-b")
    assert (await store.aquery(query)).ids != ["n4"]
    await store.adelete_nodes(["n1"])
    assert [n.node_id for n in await store.aget_nodes(["n1", "n2"])] == ["n2"]


def test_mmr_mode_trades_a_near_duplicate_for_a_different_node(
    store: VecserveVectorStore,
) -> None:
    geometry = {
        "a": [1.0, 0.0, 0.0],
        "a2": [0.99, 0.14, 0.0],
        "b": [0.6, 0.0, 0.8],
        "c": [0.0, 1.0, 0.0],
    }
    store.add([TextNode(id_=i, text=i, embedding=v) for i, v in geometry.items()])
    query = [1.0, 0.0, 0.2]
    nearest = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=2))
    assert nearest.ids == ["a", "a2"]
    mmr = VectorStoreQuery(
        query_embedding=query,
        similarity_top_k=2,
        mode=VectorStoreQueryMode.MMR,
        mmr_threshold=0.5,
    )
    picked = store.query(mmr)
    assert picked.ids == ["a", "b"]
    assert [n.get_content() for n in picked.nodes or []] == ["a", "b"]


def test_hybrid_mode_is_refused_by_name(store: VecserveVectorStore) -> None:
    hybrid = VectorStoreQuery(query_embedding=[1.0], mode=VectorStoreQueryMode.HYBRID)
    with pytest.raises(NotImplementedError, match="hybrid"):
        store.query(hybrid)


def test_filters_vecserve_cannot_express_are_refused_by_name() -> None:
    text_match = MetadataFilter(key="t", value="x", operator=FilterOperator.TEXT_MATCH)
    with pytest.raises(ValueError, match="text_match"):
        to_vecserve_filter(MetadataFilters(filters=[text_match]))
    all_of = MetadataFilter(key="tags", value=["a", "b"], operator=FilterOperator.ALL)
    assert to_vecserve_filter(MetadataFilters(filters=[all_of])) == {
        "$and": [{"tags": {"$eq": "a"}}, {"tags": {"$eq": "b"}}]
    }
    assert to_vecserve_filter(MetadataFilters(filters=[])) is None
