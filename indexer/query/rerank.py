"""Cross-encoder rerankers: the allowlist of models a server may rerank with, loaded lazily.

A cross-encoder reads a query and a document together and scores how well the document
answers the query: slower than comparing vectors, so it reorders only the best fused
candidates. Models come from local folders named in the server's configuration (as
embedders do); a request names one of them, never a path. The score is the model's
output for the pair (for sentence-transformers' one-label models, a sigmoid in (0, 1)),
higher better, comparable across queries for the same model.

torch and sentence-transformers are imported with the first model, not with this module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from indexer.embedders.base import Device
from indexer.errors import EmbedderUnavailable, InvalidQuery

log = logging.getLogger(__name__)


class RerankerConfig(BaseModel):
    """One entry of the rerankers allowlist.

    Attributes:
        name: what queries call this reranker.
        source: a local folder holding a sentence-transformers CrossEncoder (or a
            transformers sequence-classification model and its tokenizer).
        device: ``"auto"`` uses CUDA when torch sees a GPU, else the CPU.
        batch_size: pairs through the model at once.
        max_length: tokens of each (query, document) pair the model reads.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    source: str
    device: Device = "auto"
    batch_size: int = Field(default=32, ge=1, le=4096)
    max_length: int = Field(default=512, ge=8, le=8192)


class Reranker(Protocol):
    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """One score per document, higher better."""
        ...


@dataclass(slots=True)
class _Job:
    pairs: list[tuple[str, str]]
    scores: np.ndarray | None = None
    error: BaseException | None = None


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` loaded from a local folder.

    Concurrent queries are micro-batched: while the model scores one batch, the pairs of
    queries that arrive queue up, and the next query to get the model scores all of them
    in one pass (the GPU is fast only in batches), handing each query its own scores.
    """

    def __init__(self, config: RerankerConfig) -> None:
        import torch
        from sentence_transformers import CrossEncoder

        device = config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._model: Any = CrossEncoder(
            config.source, device=device, max_length=config.max_length, local_files_only=True
        )
        self._batch_size = config.batch_size
        self._model_lock = threading.Lock()  # one batch on the model at a time
        self._queue_lock = threading.Lock()
        self._queue: list[_Job] = []
        self.batches = 0  # model passes so far (each may serve several queries)

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.empty(0, dtype=np.float32)
        job = _Job([(query, doc) for doc in documents])
        with self._queue_lock:
            self._queue.append(job)
        with self._model_lock:
            if job.scores is None and job.error is None:  # no one scored it meanwhile
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._run(batch)
        if job.error is not None:
            raise job.error
        assert job.scores is not None
        return job.scores

    def _run(self, batch: list[_Job]) -> None:
        """Score every queued job's pairs in one pass (model lock held)."""
        pairs = [pair for job in batch for pair in job.pairs]
        try:
            raw = self._model.predict(
                pairs, batch_size=self._batch_size, show_progress_bar=False, convert_to_numpy=True
            )
        except BaseException as exc:
            for job in batch:
                job.error = exc
            raise
        self.batches += 1
        scores = np.asarray(raw, dtype=np.float32).reshape(len(pairs), -1)[:, 0]
        start = 0
        for job in batch:
            job.scores = scores[start : start + len(job.pairs)]
            start += len(job.pairs)


class RerankerRegistry:
    """The rerankers this server may use, by name, each loaded on first use, once."""

    def __init__(self, configs: Iterable[RerankerConfig] = ()) -> None:
        self._configs: dict[str, RerankerConfig] = {}
        for config in configs:
            if config.name in self._configs:
                raise ValueError(f"reranker name {config.name!r} is configured twice")
            self._configs[config.name] = config
        self._lock = threading.Lock()
        self._loaded: dict[str, Reranker] = {}

    def names(self) -> list[str]:
        return sorted(self._configs)

    def get(self, name: str) -> Reranker:
        """The reranker ``name``.

        Raises:
            InvalidQuery: ``name`` is not in the allowlist.
            EmbedderUnavailable: the model could not be loaded (details in the log).
        """
        config = self._configs.get(name)
        if config is None:
            raise InvalidQuery(
                f"no reranker named {name!r} is configured; configured: {self.names()}"
            )
        with self._lock:
            loaded = self._loaded.get(name)
            if loaded is None:
                loaded = self._loaded[name] = _load(config)
        return loaded


def _load(config: RerankerConfig) -> Reranker:
    try:
        return CrossEncoderReranker(config)
    except Exception as exc:
        log.exception("reranker %r failed to load", config.name)
        raise EmbedderUnavailable(
            f"reranker {config.name!r} could not be loaded; see the server log"
        ) from exc
