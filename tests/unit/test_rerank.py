"""Cross-encoder rerankers: a tiny BERT cross-encoder built at test time, loaded by the real
code from a local folder named in the allowlist."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import EmbedderUnavailable, InvalidQuery
from indexer.query.rerank import RerankerConfig, RerankerRegistry
from tests.support.cross_encoder import WORDS, write_tiny_cross_encoder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))


def test_a_reranker_scores_each_pair_as_the_model_does(tiny_folder: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    registry = RerankerRegistry(
        [RerankerConfig(name="tiny", source=str(tiny_folder), device="cpu")]
    )
    documents = ["red shoes", "blue hat", "green wool cap", "running boots"]
    scores = registry.get("tiny").score("red running shoes", documents)
    assert scores.shape == (4,)
    assert len(set(np.round(scores, 6).tolist())) > 1
    tokenizer = AutoTokenizer.from_pretrained(tiny_folder)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_folder).eval()
    batch = tokenizer(["red running shoes"] * 4, documents, return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = torch.sigmoid(model(**batch).logits[:, 0]).numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-6)
    assert registry.get("tiny") is registry.get("tiny")  # loaded once


def test_a_name_outside_the_allowlist_is_an_invalid_query(tiny_folder: Path) -> None:
    registry = RerankerRegistry([RerankerConfig(name="tiny", source=str(tiny_folder))])
    with pytest.raises(InvalidQuery, match="tiny"):
        registry.get(str(tiny_folder))


def test_a_folder_without_a_model_is_unavailable(tmp_path: Path) -> None:
    registry = RerankerRegistry([RerankerConfig(name="gone", source=str(tmp_path / "nothing"))])
    with pytest.raises(EmbedderUnavailable):
        registry.get("gone")


def test_concurrent_queries_are_scored_in_shared_batches(tiny_folder: Path) -> None:
    registry = RerankerRegistry(
        [RerankerConfig(name="tiny", source=str(tiny_folder), device="cpu")]
    )
    reranker = registry.get("tiny")
    queries = [f"{a} {b}" for a in WORDS[:4] for b in WORDS[4:]]
    documents = ["red shoes", "blue hat", "green wool cap"]
    alone = [reranker.score(q, documents) for q in queries]
    before = reranker.batches  # type: ignore[attr-defined]
    busy = reranker._model_lock  # type: ignore[attr-defined]
    with ThreadPoolExecutor(len(queries)) as pool:
        with busy:  # the model is busy: every query queues behind it
            futures = [pool.submit(reranker.score, q, documents) for q in queries]
            while len(reranker._queue) < len(queries):  # type: ignore[attr-defined]
                time.sleep(0.01)
        together = [f.result() for f in futures]
    for got, expected in zip(together, alone, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert reranker.batches - before == 1  # type: ignore[attr-defined]
