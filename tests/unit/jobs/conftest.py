from __future__ import annotations

import pytest

from indexer.embedders import Embedder, EmbedderRegistry, default_embedder_configs


@pytest.fixture(scope="module")
def registry() -> EmbedderRegistry:
    return EmbedderRegistry(default_embedder_configs())


@pytest.fixture(scope="module")
def minilm(registry: EmbedderRegistry) -> Embedder:
    return registry.get("minilm")
