"""Thumbnails: the small picture of an image point that a collection keeps on request
(``thumbnails=True``), in its store of record, for consoles and result lists."""

from __future__ import annotations

import io

from indexer.embedders.images import ImageInput, load_image

MAX_SIDE = 128  # pixels, the longer side
_QUALITY = 80


def make_thumbnail(image: ImageInput, *, allow_paths: bool = True) -> bytes:
    """A JPEG of ``image`` (upright, RGB) at most :data:`MAX_SIDE` pixels on a side.

    Raises:
        InvalidEmbedderInput: the image cannot be read or decoded.
    """
    from PIL import Image  # with the image embedders: only image collections need it

    picture = load_image(image, allow_paths=allow_paths)
    picture.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=_QUALITY, optimize=True)
    return buffer.getvalue()
