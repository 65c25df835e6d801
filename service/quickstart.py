"""``vecserve quickstart``: a demo built from real data that ships in packages.

- ``movies``: the most reviewed films of the 17,472 in ``bokeh-sampledata``'s movie
  database (Wikidata, CC0; 1940 to 2014), each embedded with ``minilm`` from one line of
  text: title, year, genres, country and director (the database has no plots).
- ``photos``: the photos that ship in ``scikit-image`` (and ``scikit-learn``'s two sample
  photos where it is installed), embedded with ``efficientnet-lite0``.

Both are indexed by the batch job (:mod:`indexer.jobs`) from JSONL files that the demo
writes to ``DATA/quickstart/``: a run again finds the jobs done and embeds nothing, and an
interrupted run resumes. Then a few example queries run on the engine and their results
are printed, with the curl and SDK commands that ask the same of the served API.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # the engine (and FAISS) load when a demo is built, not for `--help`
    from indexer import Collection, Engine, Hit
    from indexer.jobs import IndexJobConfig

__all__ = ["DEFAULT_MOVIES", "MOVIES_IN_DATABASE", "build", "show_examples", "try_it"]

MOVIES_IN_DATABASE = 17_472
DEFAULT_MOVIES = 5_000
"""Films indexed by default: about a minute of embedding on 2 CPU cores."""

TEXT_QUERY = "a space adventure with robots"
FILTERED_QUERY = ("a war film", {"year": {"$lt": 1970}})
RECOMMEND_FROM = "Inception"
CROPPED_PHOTO = "coffee"

# skimage.data entries that are not photos: downloads everything, or drawn by a program
# (binary_blobs differs on every call).
_NOT_PHOTOS = frozenset(
    {"download_all", "binary_blobs", "checkerboard", "colorwheel", "logo", "shepp_logan_phantom"}
)
_MOVIES_BATCH = 256  # small batches: the progress line moves every few seconds


@dataclass(frozen=True, slots=True)
class Built:
    """Where the demo's inputs are, and the film its recommend example starts from."""

    folder: Path
    film: Any


def build(engine: Engine, movies: int) -> Built:
    """Index the ``movies`` most reviewed films and the packaged photos into ``engine``,
    unless an earlier run did; print what is done on stdout and progress on stderr."""
    from indexer.jobs import IndexJobConfig

    folder = engine.path / "quickstart"
    films = _write_if_changed(folder / "movies.jsonl", _movie_lines(movies))
    photos = _write_if_changed(folder / "photos.jsonl", _photo_lines(folder / "photos"))
    _index(
        engine,
        IndexJobConfig(
            source=films,
            collection="movies",
            text_field="text",
            payload_fields=(
                "title",
                "year",
                "genres",
                "country",
                "director",
                "tomatometer",
                "rank",
            ),
            embedder="minilm",
            batch_size=_MOVIES_BATCH,
        ),
        f"{movies:,} films",
        {"rank": {"$gte": movies}},
    )
    _index(
        engine,
        IndexJobConfig(
            source=photos,
            collection="photos",
            image_field="image",
            payload_fields=("name", "source"),
            embedder="efficientnet-lite0",
        ),
        "the packaged photos",
    )
    return Built(folder, _film_id(engine.get_collection("movies"), RECOMMEND_FROM))


def show_examples(engine: Engine, built: Built) -> None:
    """Run the example queries on the engine and print their results."""
    from PIL import Image

    movies = engine.get_collection("movies")
    photos = engine.get_collection("photos")
    _show(f"movies like {TEXT_QUERY!r}:", movies.search(texts=[TEXT_QUERY], k=5)[0], _film)
    query, where = FILTERED_QUERY
    hits = movies.search(texts=[query], k=5, filter=where)[0]
    _show(f"movies like {query!r}, filter {orjson.dumps(where).decode()}:", hits, _film)
    title = _film(movies.get([built.film])[0].payload)
    _show(f"recommend: movies like {title}:", movies.recommend([built.film], k=5), _film)
    with Image.open(built.folder / "photos" / f"{CROPPED_PHOTO}.png") as image:
        width, height = image.size
        crop = image.crop((width // 4, height // 4, 3 * width // 4, 3 * height // 4))
        crop.load()
    _show(
        f"photos like the middle of {CROPPED_PHOTO!r} ({crop.width}x{crop.height} pixels):",
        photos.search(images=[crop], k=3)[0],
        lambda payload: f"{(payload or {}).get('name')} ({(payload or {}).get('source')})",
    )


def try_it(url: str, built: Built) -> str:
    """The commands that ask the served API what :func:`show_examples` asked the engine."""
    photo = built.folder / "photos" / f"{CROPPED_PHOTO}.png"
    post = f"curl -s {url}/collections"
    json = "-H 'content-type: application/json'"
    key = ' -H "authorization: Bearer $KEY"' if os.environ.get("VECSERVE_API_KEYS") else ""
    query, where = FILTERED_QUERY
    filtered = orjson.dumps({"text": query, "k": 5, "filter": where}).decode()
    return f"""\
Try it ({url}/docs describes the whole API):

  {post}/movies/search {json}{key} \\
    -d '{{"text": "{TEXT_QUERY}", "k": 5}}'
  {post}/movies/search {json}{key} \\
    -d '{filtered}'
  {post}/movies/recommend {json}{key} -d '{{"positive": [{built.film}], "k": 5}}'
  (printf '{{"k": 3, "image": "'; base64 -w0 {photo}; printf '"}}') \\
    | {post}/photos/search {json}{key} -d @-

  # pip install ./clients/python
  from vecserve_client import Client
  with Client("{url}") as client:
      for hit in client.search("movies", text="{TEXT_QUERY}", k=5):
          print(hit.id, round(hit.score, 3), hit.payload["title"])
"""


def _index(
    engine: Engine,
    config: IndexJobConfig,
    what: str,
    beyond: dict[str, Any] | None = None,
) -> None:
    """Run one job; a collection that does not hold exactly what the job indexed (points
    deleted since, or left from a larger run: ``beyond``) is trimmed or rebuilt."""
    from indexer.jobs import run_index_job

    title = f"{config.collection}: embedding {what} with {config.embedder}"
    summary = run_index_job(config, engine=engine, progress=_TitledProgress(title))
    collection = engine.get_collection(config.collection)
    if beyond is not None and collection.count(filter=beyond):
        collection.delete(filter=beyond)
    if collection.count() != summary.total_indexed:
        print(f"{config.collection}: points were deleted since it was built: building it again")
        engine.drop_collection(config.collection)
        summary = run_index_job(config, engine=engine, progress=_TitledProgress(title))
    ready = f"{config.collection}: {summary.total_indexed:,} {what.split()[-1]} ready"
    if summary.already_done:
        print(f"{ready} (indexed by an earlier run)")
    else:
        print(
            f"{ready} (indexed {summary.indexed:,} in {summary.elapsed_s:.1f}s; "
            f"model loaded in {summary.load_s:.1f}s)"
        )


class _TitledProgress:
    """The job's progress line on stderr, under a title, once a job really runs."""

    def __init__(self, title: str) -> None:
        from indexer.jobs import ProgressLine

        self._title = title
        self._line = ProgressLine(sys.stderr)

    def start(self, *, done_before: int, units_done: int, units_total: int | None) -> None:
        print(self._title, file=sys.stderr, flush=True)
        self._line.start(done_before=done_before, units_done=units_done, units_total=units_total)

    def update(self, *, indexed: int, rejected: int, units_done: int) -> None:
        self._line.update(indexed=indexed, rejected=rejected, units_done=units_done)

    def finish(self) -> None:
        self._line.finish()


def _movie_lines(limit: int) -> Iterator[dict[str, Any]]:
    """The ``limit`` films with the most reviews, most reviewed first."""
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


def _photo_lines(folder: Path) -> Iterator[dict[str, Any]]:
    """The packaged photos, each written once as a PNG in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source, pixels in _packaged_photos():
        path = folder / f"{name}.png"
        if not path.exists():
            _save_png(pixels, path)
        yield {"id": name, "name": name, "source": source, "image": f"photos/{name}.png"}


def _packaged_photos() -> Iterator[tuple[str, str, Any]]:
    """(name, package, pixels) of each photo that loads without a download."""
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


def _save_png(pixels: Any, path: Path) -> None:
    import numpy as np
    from PIL import Image

    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    elif pixels.dtype != np.uint8:
        low, high = float(pixels.min()), float(pixels.max())
        pixels = ((pixels - low) / ((high - low) or 1.0) * 255).round().astype(np.uint8)
    tmp = path.with_suffix(".tmp")
    Image.fromarray(pixels).save(tmp, format="PNG")
    os.replace(tmp, path)


def _write_if_changed(path: Path, records: Iterator[dict[str, Any]]) -> Path:
    """Write ``records`` as JSONL, unless the file holds them already: a job's checkpoint
    holds as long as its input file is untouched."""
    content = b"".join(orjson.dumps(record) + b"\n" for record in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != content:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(content)
        os.replace(tmp, path)
    return path


def _film_id(movies: Collection, title: str) -> Any:
    """The id of the film called ``title``, else of the most reviewed one."""
    points, _ = movies.scroll(limit=1, filter={"title": title})
    if not points:
        points, _ = movies.scroll(limit=1, filter={"rank": 0})
    return points[0].id


def _film(payload: dict[str, Any] | None) -> str:
    payload = payload or {}
    genres = ", ".join(payload.get("genres", []))
    return f"{payload.get('title')} ({payload.get('year')}) {genres}"


def _show(title: str, hits: list[Hit], describe: Callable[[dict[str, Any] | None], str]) -> None:
    print(f"\n{title}")
    for hit in hits:
        print(f"  {hit.score:.3f}  {describe(hit.payload)}")
    if not hits:
        print("  (none matches)")
