"""The LangChain vector store beyond the standard suite: filters, MMR, retrievers, and
collections whose embedder runs on the server, against a real vecserve."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from tests.integrations.conftest import READ_WRITE, fresh_name, unpooled_async_client
from tests.support.server import Server
from vecserve_client import Client, CollectionNotFound
from vecserve_client.integrations.langchain import (
    VecserveVectorStore,
    _mmr_over_relevance,
    _relevance_from_server_scores,
    to_vecserve_filter,
)

pytestmark = pytest.mark.anyio

# Vectors chosen so that the two nearest to the query are near-duplicates of each other.
VECTORS = {
    "query": [1.0, 0.0, 0.2],
    "apple": [1.0, 0.0, 0.0],
    "apple again": [0.99, 0.14, 0.0],
    "banana": [0.6, 0.0, 0.8],
    "cherry": [0.0, 1.0, 0.0],
}


class TableEmbeddings(Embeddings):
    """Each known text's vector from a table: the geometry a test needs, exactly."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [VECTORS[text] for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return VECTORS[text]


FRUITS = [
    Document(id="a", page_content="apple", metadata={"color": "red", "price": 3, "tags": ["x"]}),
    Document(id="a2", page_content="apple again", metadata={"color": "red", "price": 4}),
    Document(id="b", page_content="banana", metadata={"color": "yellow", "price": 1}),
    Document(id="c", page_content="cherry", metadata={"color": "red", "price": 10}),
]


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture
def store(vecserve: Server, client: Client) -> Iterator[VecserveVectorStore]:
    store = VecserveVectorStore(
        fresh_name("lc"),
        TableEmbeddings(),
        client=client,
        async_client=unpooled_async_client(vecserve),
    )
    store.add_documents(FRUITS)
    yield store
    client.delete_collection(store.collection_name)


def ids(documents: list[Document]) -> list[str | None]:
    return [doc.id for doc in documents]


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"color": "red"}, ["a", "a2", "c"]),
        ({"color": {"$eq": "yellow"}}, ["b"]),
        ({"price": {"$gte": 4}}, ["a2", "c"]),
        ({"price": {"$between": [3, 4]}}, ["a", "a2"]),
        ({"color": {"$in": ["yellow", "green"]}}, ["b"]),
        ({"color": {"$nin": ["red"]}}, ["b"]),
        ({"$or": [{"price": 1}, {"price": 10}]}, ["b", "c"]),
        ({"$and": [{"color": "red"}, {"price": {"$lt": 4}}]}, ["a"]),
        ({"tags": {"$exists": True}}, ["a"]),
        ({"color": {"$ne": "red"}}, ["b"]),
    ],
)
def test_retriever_filters_by_metadata_with_langchain_filter_dicts(
    store: VecserveVectorStore, filter: dict[str, object], expected: list[str]
) -> None:
    retriever = store.as_retriever(search_kwargs={"k": 10, "filter": filter})
    assert sorted(ids(retriever.invoke("query"))) == expected  # type: ignore[type-var]


async def test_async_retriever_filters_by_metadata(store: VecserveVectorStore) -> None:
    retriever = store.as_retriever(search_kwargs={"k": 10, "filter": {"price": {"$gt": 3}}})
    assert sorted(ids(await retriever.ainvoke("query"))) == ["a2", "c"]  # type: ignore[type-var]


def test_unsupported_filter_operators_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"\$like"):
        to_vecserve_filter({"name": {"$like": "%apple%"}})
    with pytest.raises(ValueError, match=r"\$between"):
        to_vecserve_filter({"price": {"$between": [1]}})


def test_filters_reach_metadata_under_its_payload_key() -> None:
    assert to_vecserve_filter({"$or": [{"a": 1}, {"b": {"$not": {"$gt": 2}}}]}, "meta") == {
        "$or": [{"meta.a": 1}, {"meta.b": {"$not": {"$gt": 2}}}]
    }


def test_mmr_trades_a_near_duplicate_for_a_different_document(store: VecserveVectorStore) -> None:
    assert ids(store.similarity_search("query", k=2)) == ["a", "a2"]
    assert ids(store.max_marginal_relevance_search("query", k=2, lambda_mult=0.5)) == ["a", "b"]
    assert ids(store.max_marginal_relevance_search("query", k=2, lambda_mult=1.0)) == ["a", "a2"]
    mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "filter": {"price": 4}})
    assert ids(mmr.invoke("query")) == ["a2"]


async def test_async_mmr_trades_a_near_duplicate_for_a_different_document(
    store: VecserveVectorStore,
) -> None:
    found = await store.amax_marginal_relevance_search("query", k=2, lambda_mult=0.5)
    assert ids(found) == ["a", "b"]
    by_vector = await store.amax_marginal_relevance_search_by_vector(VECTORS["query"], k=3)
    assert ids(by_vector) == ["a", "b", "c"]


def test_scores_and_relevance_scores_come_from_the_server(store: VecserveVectorStore) -> None:
    scored = store.similarity_search_with_score("query", k=2)
    assert [doc.id for doc, _ in scored] == ["a", "a2"]
    assert [score for _, score in scored] == pytest.approx(
        [cosine(VECTORS["query"], VECTORS[text]) for text in ("apple", "apple again")], abs=1e-5
    )
    relevance = store.similarity_search_with_relevance_scores("cherry", k=4)
    assert relevance[0][0].id == "c"
    assert all(0.0 <= score <= 1.0 for _, score in relevance)
    assert relevance[0][1] == pytest.approx(1.0)


def test_delete_by_metadata_filter_keeps_the_rest(store: VecserveVectorStore) -> None:
    store.delete(filter={"color": "red"})
    assert ids(store.get_by_ids(["a", "a2", "b", "c"])) == ["b"]
    with pytest.raises(ValueError, match="exactly one"):
        store.delete()


def test_from_texts_creates_the_collection_and_adds(vecserve: Server, client: Client) -> None:
    name = fresh_name("lc")
    store = VecserveVectorStore.from_texts(
        ["apple", "cherry"],
        TableEmbeddings(),
        [{"n": 1}, {"n": 2}],
        ids=["1", "2"],
        collection_name=name,
        url=vecserve.url,
        api_key=READ_WRITE,
    )
    try:
        assert client.get_collection(name).dim == 3
        assert store.similarity_search("query", k=1) == [
            Document(id="1", page_content="apple", metadata={"n": 1})
        ]
    finally:
        client.delete_collection(name)
        store.close()


async def test_afrom_texts_adds_through_the_async_client(vecserve: Server) -> None:
    name = fresh_name("lc")
    store = await VecserveVectorStore.afrom_texts(
        ["banana"], TableEmbeddings(), collection_name=name, url=vecserve.url, api_key=READ_WRITE
    )
    try:
        found = await store.asimilarity_search_by_vector([0.0, 0.0, 1.0], k=5)
        assert [doc.page_content for doc in found] == ["banana"]
        await store.adelete(ids(found))  # type: ignore[arg-type]
        assert await store.aget_by_ids(ids(found)) == []  # type: ignore[arg-type]
    finally:
        await store.async_client.delete_collection(name)
        await store.aclose()


def test_a_store_needs_one_way_to_embed_and_a_client() -> None:
    with pytest.raises(ValueError, match="embedding"):
        VecserveVectorStore("x", TableEmbeddings(), url="http://127.0.0.1:1", embedder="minilm")
    with pytest.raises(ValueError, match="url"):
        VecserveVectorStore("x", TableEmbeddings())


# -- the server's embedder ---------------------------------------------------------------

NOTES = [
    "a recipe for apple pie with cinnamon",
    "how to change a flat tyre on a bicycle",
    "the stock market fell sharply on monday",
]


@pytest.fixture(scope="module")
def server_embedded(vecserve: Server) -> Iterator[str]:
    """A collection embedded by the server's MiniLM, filled through the store."""
    name = fresh_name("lc")
    with Client(vecserve.url, api_key=READ_WRITE) as client:
        store = VecserveVectorStore(name, client=client, embedder="minilm")
        store.add_texts(NOTES, [{"topic": t} for t in ("food", "bikes", "money")])
        yield name
        with contextlib.suppress(CollectionNotFound):
            client.delete_collection(name)


def test_server_embeds_texts_and_queries_without_langchain_embeddings(
    vecserve: Server, client: Client, server_embedded: str
) -> None:
    store = VecserveVectorStore(server_embedded, client=client)
    assert store.embeddings is None
    assert client.get_collection(server_embedded).embedder == "minilm"
    top = store.similarity_search("baking a dessert", k=1)
    assert [doc.page_content for doc in top] == [NOTES[0]]
    filtered = store.similarity_search("baking a dessert", k=3, filter={"topic": "money"})
    assert [doc.metadata for doc in filtered] == [{"topic": "money"}]
    diverse = store.max_marginal_relevance_search("repairing a bike wheel", k=2, fetch_k=3)
    assert diverse[0].page_content == NOTES[1]
    assert len({doc.id for doc in diverse}) == 2


async def test_async_server_embedding_search(vecserve: Server, server_embedded: str) -> None:
    store = VecserveVectorStore(server_embedded, async_client=unpooled_async_client(vecserve))
    top = await store.asimilarity_search("shares and bonds", k=1)
    assert [doc.metadata for doc in top] == [{"topic": "money"}]
    diverse = await store.amax_marginal_relevance_search("cinnamon pie", k=3, fetch_k=3)
    assert diverse[0].page_content == NOTES[0]
    assert sorted(doc.page_content for doc in diverse) == sorted(NOTES)


def test_mmr_from_server_scores_picks_as_langchain_does_from_the_query_vector() -> None:
    """When the server embeds the query, its scores stand for the query's vector: the
    picks are LangChain's own from that vector."""
    rng = np.random.default_rng(5)
    candidates = rng.standard_normal((30, 8)).astype(np.float32)
    candidates /= np.linalg.norm(candidates, axis=1, keepdims=True)
    query = rng.standard_normal(8).astype(np.float32)
    query /= np.linalg.norm(query)
    scores = candidates @ query
    for lambda_mult in (0.0, 0.3, 0.5, 0.9):
        expected = maximal_marginal_relevance(query, candidates.tolist(), lambda_mult, k=6)
        assert _mmr_over_relevance(scores, candidates, 6, lambda_mult) == expected
    distances = np.linalg.norm(candidates - query, axis=1)  # what an l2 collection returns
    relevance = _relevance_from_server_scores(distances.tolist(), "l2")
    np.testing.assert_allclose(relevance, scores, atol=1e-5)
