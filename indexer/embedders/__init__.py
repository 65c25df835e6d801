"""Embedders: models that turn texts and images into vectors.

Which models a server may load is its configuration, an allowlist of
:class:`EmbedderConfig`; :class:`EmbedderRegistry` loads each on first use. Every embedder
follows the :class:`Embedder` protocol and returns float32 rows of unit norm.

Importing this package imports neither torch, PIL, sentence-transformers nor transformers;
they load with the first model, so vectors-only servers and the CLI start fast.
"""

from indexer.embedders.base import Embedder, Modality, TokenCounter
from indexer.embedders.clip import ClipEmbedder
from indexer.embedders.config import EmbedderConfig, EmbedderKind, default_embedder_configs
from indexer.embedders.efficientnet import EfficientNetLite0Embedder
from indexer.embedders.images import DEFAULT_MAX_PIXELS, ImageInput, load_image
from indexer.embedders.registry import EmbedderRegistry
from indexer.embedders.sentence_transformer import SentenceTransformerEmbedder

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ClipEmbedder",
    "EfficientNetLite0Embedder",
    "Embedder",
    "EmbedderConfig",
    "EmbedderKind",
    "EmbedderRegistry",
    "ImageInput",
    "Modality",
    "SentenceTransformerEmbedder",
    "TokenCounter",
    "default_embedder_configs",
    "load_image",
]
