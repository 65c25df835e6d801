"""``POST /v1/embeddings`` speaks OpenAI's embeddings API: the ``openai`` client and
LangChain's ``OpenAIEmbeddings`` embed with the server's MiniLM through it, with a
vecserve API key."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest
import tiktoken
from langchain_openai import OpenAIEmbeddings

from tests.integrations.conftest import READ_ONLY, READ_WRITE
from tests.support.server import Server
from vecserve_client import Client

REFERENCE = "openai-reference"
TEXTS = ["a kitten sleeps on the sofa", "a cat naps on the couch", "the stock market fell"]

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def stored_vectors(vecserve: Server) -> np.ndarray:
    """TEXTS as a collection with the minilm embedder stores them: the reference."""
    with Client(vecserve.url, api_key=READ_WRITE) as client:
        client.create_collection(REFERENCE, embedder="minilm", index="flat")
        client.upsert(REFERENCE, [0, 1, 2], texts=TEXTS)
        points = client.get(REFERENCE, [0, 1, 2], with_vectors=True)
    return np.stack([p.vector for p in points if p.vector is not None])


def server_embeddings(
    vecserve: Server, **http: httpx.Client | httpx.AsyncClient
) -> OpenAIEmbeddings:
    """LangChain's OpenAIEmbeddings on the server's minilm, through ``http_client`` or
    ``http_async_client`` (LangChain does not close its own)."""
    return OpenAIEmbeddings(
        model="minilm",
        base_url=f"{vecserve.url}/v1",
        api_key=READ_ONLY,  # type: ignore[arg-type]
        check_embedding_ctx_length=False,
        max_retries=0,
        **http,  # type: ignore[arg-type]
    )


@pytest.fixture
def client(vecserve: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{vecserve.url}/v1", api_key=READ_ONLY, max_retries=0) as client:
        yield client


def test_openai_client_gets_the_vectors_a_collection_stores(
    client: openai.OpenAI, stored_vectors: np.ndarray
) -> None:
    # The openai client asks for base64 unless told otherwise, and decodes it.
    answer = client.embeddings.create(model="minilm", input=TEXTS)
    assert answer.object == "list"
    assert answer.model == "minilm"
    assert [e.index for e in answer.data] == [0, 1, 2]
    assert all(e.object == "embedding" for e in answer.data)
    vectors = np.array([e.embedding for e in answer.data])
    np.testing.assert_allclose(vectors, stored_vectors, atol=1e-5)
    # Near in meaning, near in space.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 3 * 3


def test_float_and_base64_encodings_carry_the_same_vectors(vecserve: Server) -> None:
    headers = {"Authorization": f"Bearer {READ_ONLY}"}
    with httpx.Client(base_url=vecserve.url, headers=headers) as http:
        floats = http.post("/v1/embeddings", json={"model": "minilm", "input": "hello world"})
        packed = http.post(
            "/v1/embeddings",
            json={"model": "minilm", "input": ["hello world"], "encoding_format": "base64"},
        )
    assert floats.status_code == packed.status_code == 200
    as_floats = np.array(floats.json()["data"][0]["embedding"], dtype=np.float32)
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    np.testing.assert_array_equal(np.frombuffer(raw, dtype="<f4"), as_floats)
    assert as_floats.shape == (384,)
    # [CLS] hello world [SEP]
    assert floats.json()["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


@pytest.mark.parametrize(
    ("body", "status", "name"),
    [
        ({"model": "no-such-model", "input": "x"}, 404, "EmbedderNotFound"),
        ({"model": "minilm", "input": []}, 422, "InvalidRequest"),
        ({"model": "minilm", "input": ""}, 422, "InvalidRequest"),
        ({"model": "minilm", "input": ["a", ""]}, 422, "InvalidRequest"),
        ({"model": "minilm", "input": [101, 102]}, 422, "InvalidRequest"),
        ({"model": "minilm", "input": "x", "dimensions": 128}, 422, "DimensionMismatch"),
        ({"model": "minilm", "input": "x", "encoding_format": "int8"}, 422, "InvalidRequest"),
        ({"model": "minilm", "input": ["x"] * 1025}, 413, "RequestTooLarge"),
    ],
)
def test_bad_requests_get_vecserve_errors_with_stable_names(
    vecserve: Server, body: dict[str, object], status: int, name: str
) -> None:
    response = httpx.post(
        f"{vecserve.url}/v1/embeddings", json=body, headers={"X-API-Key": READ_ONLY}
    )
    assert response.status_code == status, response.text
    assert response.json()["error"] == name
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_the_openai_client_raises_on_an_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert raised.value.status_code == 404
    assert raised.value.response.json() == {
        "error": "EmbedderNotFound",
        "message": "no embedder named 'text-embedding-3-small' is configured",
        "request_id": raised.value.response.headers["x-request-id"],
    }


def test_embedding_needs_a_key_and_a_read_only_one_is_enough(vecserve: Server) -> None:
    url = f"{vecserve.url}/v1"
    wrong = openai.OpenAI(base_url=url, api_key="not-a-key-0123456789", max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError):
        wrong.embeddings.create(model="minilm", input="x")
    response = httpx.post(f"{url}/embeddings", json={"model": "minilm", "input": "x"})
    assert (response.status_code, response.json()["error"]) == (401, "Unauthorized")
    with openai.OpenAI(base_url=url, api_key=READ_ONLY) as read_only:
        assert len(read_only.embeddings.create(model="minilm", input="x").data) == 1


async def test_concurrent_requests_are_embedded_in_shared_batches(vecserve: Server) -> None:
    def batched_queries() -> float:
        metrics = httpx.get(f"{vecserve.url}/metrics", headers={"X-API-Key": READ_ONLY}).text
        counts = [
            line
            for line in metrics.splitlines()
            if line.startswith("vecserve_search_batch_size_count")
        ]
        return float(counts[0].split()[-1]) if counts else 0.0

    before = batched_queries()
    async with openai.AsyncOpenAI(base_url=f"{vecserve.url}/v1", api_key=READ_ONLY) as client:
        answers = await asyncio.gather(
            *(client.embeddings.create(model="minilm", input=[t]) for t in TEXTS * 4)
        )
    batches = batched_queries() - before
    assert 1 <= batches < len(answers)
    vectors = [np.array(a.data[0].embedding) for a in answers]
    for i, vector in enumerate(vectors):
        np.testing.assert_allclose(vector, vectors[i % len(TEXTS)], atol=1e-5)


def test_langchain_openai_embeddings_use_the_server_without_tiktoken(
    vecserve: Server, stored_vectors: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_tiktoken(*args: object, **kwargs: object) -> None:
        raise AssertionError("tiktoken was asked for an encoding (it would download it)")

    monkeypatch.setattr(tiktoken, "get_encoding", no_tiktoken)
    monkeypatch.setattr(tiktoken, "encoding_for_model", no_tiktoken)
    with httpx.Client() as http:  # closed here: LangChain does not close its own
        embeddings = server_embeddings(vecserve, http_client=http)
        documents = np.array(embeddings.embed_documents(TEXTS))
        query = embeddings.embed_query(TEXTS[2])
    np.testing.assert_allclose(documents, stored_vectors, atol=1e-5)
    np.testing.assert_allclose(query, stored_vectors[2], atol=1e-5)


async def test_langchain_openai_async_embeddings(
    vecserve: Server, stored_vectors: np.ndarray
) -> None:
    async with httpx.AsyncClient() as http:
        embeddings = server_embeddings(vecserve, http_async_client=http)
        vector = await embeddings.aembed_query(TEXTS[0])
    np.testing.assert_allclose(vector, stored_vectors[0], atol=1e-5)
