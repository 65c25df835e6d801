"""Embedders loaded before the server is ready: a model loads in seconds (torch, weights)
and its first call is slower still, which the first search would otherwise wait for."""

from __future__ import annotations

import io
import logging
import time

from indexer import Engine
from indexer.errors import VecserveError

log = logging.getLogger(__name__)

_WARM_UP_TEXT = "warm-up"


def warm_embedders(engine: Engine) -> list[str]:
    """Load each embedder the open collections use and embed one input with it; returns
    the names of those warmed. One that cannot be loaded is logged and left: its
    collections still answer searches by vector and by point id."""
    names = sorted(
        {
            used
            for name in engine.list_collections()
            if (used := engine.get_collection(name).config.embedder) is not None
        }
    )
    if not names:
        return []
    log.info(
        "loading embedders %s before ready (VECSERVE_WARM_EMBEDDERS=false skips this)",
        ", ".join(names),
    )
    warmed = []
    for name in names:
        started = time.perf_counter()
        try:
            embedder = engine.embedders.get(name)
            if "text" in embedder.modalities:
                embedder.embed_texts([_WARM_UP_TEXT])
            else:
                embedder.embed_images([_blank_image()])
        except VecserveError as exc:
            log.warning("embedder %s not loaded before ready: %s", name, exc.message)
            continue
        log.info("embedder %s loaded in %.1f s", name, time.perf_counter() - started)
        warmed.append(name)
    return warmed


def _blank_image() -> bytes:
    """A small PNG (Pillow is there whenever an image embedder loaded)."""
    from PIL import Image  # imported here: only servers with image collections need it

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()
