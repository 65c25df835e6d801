"""What every model loader does before touching a model: pick the device, check the
folder, and make sure the Hugging Face libraries never reach the network."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.embedders.base import Device
from indexer.errors import EmbedderUnavailable

if TYPE_CHECKING:
    import torch

__all__ = ["forbid_hub_downloads", "local_folder", "resolve_device"]


def resolve_device(requested: Device) -> torch.device:
    """Pick the torch device: CUDA for ``"auto"`` when torch sees a GPU, else the CPU.

    Raises:
        EmbedderUnavailable: ``"cuda"`` was asked for and torch sees no CUDA device.
    """
    import torch

    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise EmbedderUnavailable("device 'cuda' was configured but torch sees no CUDA device")
    return torch.device("cpu")


def local_folder(name: str, source: str) -> Path:
    """Return ``source`` as an existing folder.

    Checking first keeps a missing folder from being taken for a model-hub id.

    Raises:
        EmbedderUnavailable: the folder does not exist.
    """
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise EmbedderUnavailable(f"embedder {name!r}: its model folder does not exist")
    return folder


def forbid_hub_downloads() -> None:
    """Keep huggingface_hub offline and quiet; call before importing transformers.

    huggingface_hub reads ``HF_HUB_OFFLINE`` when first imported, so setting it here, before
    the first model is loaded, covers every later load; an operator's own setting wins.
    The loaders also pass ``local_files_only=True`` for libraries imported earlier.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # A server's log is no place for per-load tqdm bars ("Loading weights: 100%").
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # The variable above is read when transformers is first imported; this covers a
    # transformers imported earlier.
    from transformers.utils import logging as transformers_logging

    disable_progress_bar: Callable[[], None] = transformers_logging.disable_progress_bar
    disable_progress_bar()
