"""A cosine score is a cosine: never above 1 or below -1, though float32 arithmetic on
unit vectors gives a vector's cosine with itself as 1.0000005 at times."""

from __future__ import annotations

import numpy as np
import pytest

from indexer import Engine

N, DIM = 2_000, 64


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_cosine_scores_stay_within_minus_one_and_one(engine: Engine, index: str) -> None:
    vectors = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    collection = engine.create_collection("c", DIM, "cosine", index)
    collection.upsert(list(range(N)), vectors)
    # Each vector and its opposite: the nearest is itself (1), the farthest its negation.
    queries = np.concatenate([vectors[:500], -vectors[:500]])
    _, scores = collection.search_arrays(queries, 3)
    assert scores.max() <= 1.0
    assert scores.min() >= -1.0
    assert np.allclose(scores[:500, 0], 1.0, atol=1e-5)
    hits = collection.search(vectors[:500], 1)
    assert max(row[0].score for row in hits) <= 1.0
    exact = collection.search(vectors[:50], 1, params={"exact": True})
    assert max(row[0].score for row in exact) <= 1.0
    like = collection.recommend([0], k=N - 1)
    assert all(-1.0 <= hit.score <= 1.0 for hit in like)
