"""Text and image embedding into one space with a CLIP model from a local folder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from indexer.embedders.base import ModelEmbedder, check_images, check_texts, decode_images
from indexer.embedders.config import MODALITIES, EmbedderConfig, batch_for
from indexer.embedders.images import ImageInput
from indexer.embedders.loading import forbid_hub_downloads, local_folder, resolve_device
from indexer.errors import EmbedderUnavailable

if TYPE_CHECKING:
    import torch

__all__ = ["ClipEmbedder", "load_clip"]


class ClipEmbedder(ModelEmbedder):
    """Embeds texts and images with a transformers ``CLIPModel``, into the same space.

    Texts are cut to the model's context (77 tokens for the OpenAI CLIPs); images are
    resized and centre-cropped by the folder's CLIP image processor, PIL-based.
    """

    def __init__(
        self,
        name: str,
        model: Any,
        tokenizer: Any,
        image_processor: Any,
        device: torch.device,
        batch_size: int,
    ) -> None:
        # The vector length is the model's projection dimension. The lock: fast tokenizers
        # are not safe to call from two threads at once.
        dim = int(model.config.projection_dim)
        super().__init__(name, dim, MODALITIES["clip"], batch_size)
        self._model = model
        self._tokenizer = tokenizer
        self._image_processor = image_processor
        self._device = device
        self._max_tokens = min(
            int(tokenizer.model_max_length), int(model.config.text_config.max_position_embeddings)
        )

    @property
    def max_seq_length(self) -> int:
        """Tokens of a text that are embedded, start and end tokens included."""
        return self._max_tokens

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` into unit-norm float32 rows, ``[len(texts), dim]``."""
        return self._in_batches(check_texts(texts), lambda batch, _: self._text_features(batch))

    def embed_images(self, images: Sequence[ImageInput]) -> npt.NDArray[np.float32]:
        """Embed ``images`` into unit-norm float32 rows, ``[len(images), dim]``.

        Raises:
            InvalidEmbedderInput: an image cannot be decoded; the message names its position.
        """
        return self._in_batches(
            check_images(images),
            lambda batch, start: self._image_features(decode_images(batch, start)),
        )

    def _text_features(self, texts: list[str]) -> npt.NDArray[np.float32]:
        import torch

        with self._lock, torch.inference_mode():
            tokens = self._tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=self._max_tokens,
                return_tensors="pt",
            ).to(self._device)
            output = self._model.get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            )
            return _to_numpy(output)

    def _image_features(self, images: list[Any]) -> npt.NDArray[np.float32]:
        import torch

        with self._lock, torch.inference_mode():
            pixels = self._image_processor(images=images, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(self._device, dtype=self._model.dtype)
            return _to_numpy(self._model.get_image_features(pixel_values=pixels))


def load_clip(config: EmbedderConfig) -> ClipEmbedder:
    """Load the transformers CLIP folder ``config.source``.

    The folder needs what ``CLIPModel.save_pretrained``, a CLIP tokenizer's
    ``save_pretrained`` and an image processor's ``save_pretrained`` write.

    Raises:
        EmbedderUnavailable: the folder is missing, or no CUDA device.
    """
    if config.source is None:
        raise EmbedderUnavailable(f"embedder {config.name!r}: a clip model needs a source folder")
    folder = str(local_folder(config.name, config.source))
    device = resolve_device(config.device)
    forbid_hub_downloads()
    from transformers import AutoTokenizer, CLIPModel

    model: Any = CLIPModel.from_pretrained(folder, local_files_only=True)
    model.eval().to(device)
    if device.type == "cuda":
        model.half()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    image_processor = _image_processor_class().from_pretrained(folder, local_files_only=True)
    return ClipEmbedder(
        config.name, model, tokenizer, image_processor, device, batch_for(config, device)
    )


def _image_processor_class() -> Any:
    # transformers 5 splits image processors into a torchvision and a PIL backend; we
    # never depend on torchvision. Before 5, CLIPImageProcessor was the PIL one.
    try:
        from transformers import CLIPImageProcessorPil
    except ImportError:
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor
    return CLIPImageProcessorPil


def _to_numpy(output: Any) -> npt.NDArray[np.float32]:
    # get_*_features returns a tensor before transformers 5 and a model output after.
    import torch

    features = output if isinstance(output, torch.Tensor) else output.pooler_output
    result: npt.NDArray[np.float32] = features.float().cpu().numpy()
    return result
