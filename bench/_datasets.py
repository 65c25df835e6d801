"""The benchmarks' data sets, as base vectors and queries: real corpora from
:mod:`service.sample_data`, split the same way in each benchmark, and synthetic clusters."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from service import sample_data

SEED = 0


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (as a cosine index holds it), float32, contiguous."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


@dataclass(frozen=True)
class Dataset:
    name: str
    metric: str  # the engine's metric name: "cosine" or "l2"
    base: np.ndarray  # [n, d] float32, as written to the engine
    queries: np.ndarray  # [nq, d] float32, as given to the engine
    payloads: list[dict[str, Any]]
    note: str

    @cached_property
    def prepared_base(self) -> np.ndarray:
        """The base vectors as the index holds them (unit length for cosine)."""
        return self._prepared(self.base)

    @cached_property
    def prepared_queries(self) -> np.ndarray:
        return self._prepared(self.queries)

    def _prepared(self, vectors: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            return unit_rows(vectors)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metric": self.metric,
            "n_base": len(self.base),
            "n_queries": len(self.queries),
            "note": self.note,
        }


def glove_held_out(n_base: int | None, n_queries: int) -> Dataset:
    """GloVe 6B 50-d: ``n_queries`` random words held out as queries, ``n_base`` of the
    rest (all of them when None), in the file's order."""
    vectors = np.asarray(sample_data.glove_vectors())
    words = sample_data.glove_words()
    order = np.random.default_rng(SEED).permutation(len(vectors))
    rest = order[n_queries:]
    base = np.sort(rest if n_base is None else rest[:n_base])
    note = (
        f"{len(base):,} of {len(vectors):,} words"
        + ("" if n_base is None else " (random subset)")
        + f"; {n_queries:,} held-out words as queries"
    )
    return Dataset(
        name="glove-50",
        metric="cosine",
        base=np.ascontiguousarray(vectors[base], dtype=np.float32),
        queries=np.ascontiguousarray(vectors[order[:n_queries]], dtype=np.float32),
        payloads=[{"word": words[i]} for i in base],
        note=note,
    )


def glove_by_frequency(n: int) -> tuple[list[str], np.ndarray]:
    """The ``n`` most frequent GloVe words and their vectors (float32)."""
    vectors = np.asarray(sample_data.glove_vectors()[:n], dtype=np.float32)
    return sample_data.glove_words(n), vectors


def hybrid_queries(queries: np.ndarray, words: list[str]) -> list[dict[str, Any]]:
    """One ``/query`` body per query vector: the vector and a word's BM25 over the
    full-text field, 50 candidates each, fused by RRF, 10 hits. The words are spread over
    the whole vocabulary, common and rare, not only the most frequent."""
    spread = words[:: max(1, len(words) // len(queries))]
    return [
        {
            "prefetch": [
                {"dense": {"vector": q.tolist()}, "limit": 50},
                {"lexical": {"text": word}, "limit": 50},
            ],
            "fusion": {"method": "rrf"},
            "limit": 10,
        }
        for q, word in zip(queries, spread, strict=False)
    ]


def fashion_mnist(folder: Path, n_base: int | None, n_queries: int) -> Dataset:
    """Fashion-MNIST as raw pixel values (l2): the first ``n_base`` training images (all
    when None) as the base, labelled, and the first ``n_queries`` test images as queries."""
    images = sample_data.load_fashion_mnist(folder)
    base = images.train[:n_base]
    return Dataset(
        name="fashion-mnist-784",
        metric="l2",
        base=base,
        queries=images.test[:n_queries],
        payloads=[{"label": int(label)} for label in images.train_labels[: len(base)]],
        note=f"{len(base):,} training images; the first {n_queries:,} test images as queries",
    )


def clustered(n: int, n_queries: int, dim: int) -> Dataset:
    """Unit vectors around 1,000 random centres (clusters make IVF meaningful), generated
    in chunks (1M x 768 is 3 GB): ``n`` as the base and ``n_queries`` more as queries."""
    rng = np.random.default_rng(SEED)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    total = n + n_queries
    out = np.empty((total, dim), dtype=np.float32)
    for start in range(0, total, 100_000):
        stop = min(total, start + 100_000)
        part = centres[rng.integers(0, 1000, stop - start)]
        part += 0.6 * rng.standard_normal((stop - start, dim), dtype=np.float32)
        out[start:stop] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return Dataset(
        name=f"synthetic-{n // 1000}k-{dim}",
        metric="cosine",
        base=out[:n],
        queries=out[n:],
        payloads=[],
        note=f"{n:,} unit vectors around 1,000 random centres; {n_queries:,} more as queries",
    )


def wordnet_sample(n: int) -> list[dict[str, str]]:
    """A seeded random sample of ``n`` WordNet glosses (``{"id", "gloss", "pos"}``), kept
    in file order; exits with the install command when WordNet is missing."""
    try:
        records = sample_data.wordnet_glosses()
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    chosen = sorted(random.Random(SEED).sample(range(len(records)), min(n, len(records))))
    return [records[i] for i in chosen]
