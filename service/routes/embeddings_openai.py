"""``POST /v1/embeddings``: OpenAI's embeddings API, answered by the server's embedders.

Clients written for OpenAI (the ``openai`` package, LangChain's ``OpenAIEmbeddings``,
anything that takes a ``base_url``) embed with the server's models by pointing at
``http://HOST:PORT/v1`` with a vecserve API key. ``model`` names an embedder of the
server's allowlist, never a path or a hub id. The texts go through the app's
:class:`~service.batching.MicroBatcher`, batched with the other requests for the same
model. The request and response follow OpenAI's shapes (kept here: they are OpenAI's,
not vecserve's); errors are vecserve's, with stable names.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import Response
from pydantic import BaseModel, Field, StringConstraints, WithJsonSchema
from starlette.concurrency import run_in_threadpool

from indexer.embedders import TokenCounter
from indexer.errors import DimensionMismatch, InvalidEmbedderInput
from service.deps import BatcherDep, EngineDep, SettingsDep
from service.errors import RequestTooLarge
from service.responses import Json
from service.routing import ApiRouter
from service.schemas import Body, WholeNumber

router = ApiRouter(prefix="/v1", tags=["openai"])

Text = Annotated[str, StringConstraints(min_length=1)]


class EmbeddingsRequest(Body):
    """OpenAI's embeddings request; token arrays as ``input`` are not taken."""

    model: str = Field(description="An embedder of the server's allowlist, such as minilm.")
    input: Text | Annotated[list[Text], Field(min_length=1)] = Field(
        description="A text, or a list of texts; none may be empty."
    )
    encoding_format: Literal["float", "base64"] = Field(
        default="float",
        description="float: JSON arrays; base64: each vector's little-endian float32 bytes.",
    )
    dimensions: (
        Annotated[WholeNumber, WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 65_536})]
        | None
    ) = Field(default=None, description="If given, it must be the model's own dimension.")
    user: str | None = Field(default=None, description="Accepted and ignored.")


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


@router.post(
    "/embeddings",
    operation_id="create_embeddings",
    response_model=EmbeddingsResponse,
    responses={
        404: {"description": "No embedder of that name is configured (`EmbedderNotFound`)"},
        503: {"description": "The embedder could not be loaded (`EmbedderUnavailable`)"},
    },
)
async def create_embeddings(
    body: EmbeddingsRequest, engine: EngineDep, settings: SettingsDep, batcher: BatcherDep
) -> Response:
    """Embed texts with one of the server's text embedders, in OpenAI's shape.

    An unknown model is a 404 ``EmbedderNotFound``; a model that embeds no texts is a 422
    ``InvalidEmbedderInput``; ``dimensions`` other than the model's is a 422
    ``DimensionMismatch``; more texts than ``max_queries_per_batch`` is a 413."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    if len(texts) > settings.max_queries_per_batch:
        raise RequestTooLarge(
            f"{len(texts)} texts in one request; this server takes at most "
            f"{settings.max_queries_per_batch}"
        )
    # The first request for a model loads it (seconds): not on the event loop.
    embedder = await run_in_threadpool(engine.embedders.get, body.model)
    if "text" not in embedder.modalities:
        raise InvalidEmbedderInput(f"embedder {body.model!r} embeds no texts")
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise DimensionMismatch(
            f"embedder {body.model!r} makes {embedder.dim}-dimensional vectors, "
            f"not {body.dimensions}"
        )
    vectors = await batcher.embed_texts(embedder, texts)
    tokens = 0
    if isinstance(embedder, TokenCounter):
        tokens = sum(await run_in_threadpool(embedder.count_tokens, texts))
    data = [
        {"object": "embedding", "index": i, "embedding": _encoded(vector, body.encoding_format)}
        for i, vector in enumerate(vectors)
    ]
    return Json(
        {
            "object": "list",
            "data": data,
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _encoded(vector: np.ndarray, encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector
