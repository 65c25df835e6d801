"""``vecserve quickstart``: a demo built from real data that ships in packages, then served.

- ``movies``: the most reviewed films of ``bokeh-sampledata``'s movie database
  (:func:`service.sample_data.films`), each embedded with ``minilm`` from one line of text.
- ``photos``: the photos that ship in ``scikit-image`` (and ``scikit-learn``)
  (:func:`service.sample_data.packaged_photos`), embedded with ``efficientnet-lite0``.

Both are indexed by the batch job (:mod:`indexer.jobs`) from JSONL files that the demo
writes to ``DATA/quickstart/``: a run again finds the jobs done and embeds nothing, and an
interrupted run resumes. Then a few example queries run on the engine and their results
are printed, with the curl and SDK commands that ask the same of the served API.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from service.cli.failure import USAGE, CommandFailed
from service.cli.options import add_data_option
from service.sample_data import FILMS_IN_DATABASE
from service.settings import Settings

if TYPE_CHECKING:  # the engine (and FAISS) load when a demo is built, not for `--help`
    from indexer import Collection, Engine, Hit
    from indexer.jobs import IndexJobConfig

__all__ = [
    "DEFAULT_MOVIES",
    "DESCRIPTION",
    "HELP",
    "NAME",
    "add_arguments",
    "build",
    "run",
    "show_examples",
    "try_it",
]

DEFAULT_MOVIES = 5_000
"""Films indexed by default: about half a minute of embedding on 2 idle CPU cores."""

NAME = "quickstart"
HELP = "build a demo of films and photos from packaged data, show queries, serve it"
DESCRIPTION = (
    "Embed the most reviewed films of bokeh-sampledata's movie database (Wikidata, "
    f"{FILMS_IN_DATABASE:,} films) into a 'movies' collection with minilm, and the photos "
    "that ship in scikit-image (and scikit-learn) into a 'photos' collection with "
    "efficientnet-lite0; run example searches, print the curl and SDK commands that ask the "
    "API the same, and serve the data folder on 127.0.0.1. The default "
    f"{DEFAULT_MOVIES:,} films take about 30 seconds on 2 idle CPU cores; a second run reuses the "
    "collections."
)

TEXT_QUERY = "a space adventure with robots"
FILTERED_QUERY = ("a war film", {"year": {"$lt": 1970}})
RECOMMEND_FROM = "Inception"
CROPPED_PHOTO = "coffee"

_MOVIES_BATCH = 256  # small batches: the progress line moves every few seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Settings.model_fields
    add_data_option(parser, defaults["data_dir"].default)
    port = defaults["port"].default
    parser.add_argument(
        "--port",
        type=int,
        default=port,
        help=f"port to serve on, on 127.0.0.1 (default: {port})",
    )
    parser.add_argument(
        "--movies",
        type=int,
        default=DEFAULT_MOVIES,
        metavar="N",
        help=f"the N films with the most reviews (default: {DEFAULT_MOVIES}; "
        f"all: {FILMS_IN_DATABASE})",
    )
    parser.add_argument(
        "--no-serve", action="store_true", help="build and show the examples, then exit"
    )


def run(args: argparse.Namespace) -> int:
    """Build the demo collections, show example queries, then serve them (unless
    ``--no-serve``).

    Raises:
        CommandFailed: ``--movies`` out of range, or the port taken (status 2).
        ModuleNotFoundError: a package the demo needs is missing.
    """
    from indexer import Engine
    from service.cli.serve import listen_socket, serve

    if not 1 <= args.movies <= FILMS_IN_DATABASE:
        raise CommandFailed(f"--movies is between 1 and {FILMS_IN_DATABASE:,}", USAGE)
    # The port is taken first: a busy one is told before a minute of building.
    listener = None if args.no_serve else listen_socket("127.0.0.1", args.port)
    with listener or contextlib.nullcontext():
        with Engine(args.data, background=False) as engine:
            built = build(engine, args.movies)
            show_examples(engine, built)
        url = f"http://127.0.0.1:{args.port}"
        print("\n" + try_it(url, built))
        if listener is None:
            print(f"Serve them: vecserve serve --data {args.data} --port {args.port}")
            return 0
        print(f"Serving {os.path.abspath(args.data)} on {url} (Ctrl-C stops)", flush=True)
        given = {"data_dir": args.data, "host": "127.0.0.1", "port": args.port}
        return serve(given, "warning", listener)


@dataclass(frozen=True, slots=True)
class Built:
    """Where the demo's inputs are, and the film its recommend example starts from."""

    folder: Path
    film: Any


def build(engine: Engine, movies: int) -> Built:
    """Index the ``movies`` most reviewed films and the packaged photos into ``engine``,
    unless an earlier run did; print what is done on stdout and progress on stderr."""
    from indexer.jobs import IndexJobConfig
    from service.sample_data import films as sample_films

    folder = engine.path / "quickstart"
    films = _write_if_changed(folder / "movies.jsonl", sample_films(movies))
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
    from service.settings import API_KEYS_ENV

    photo = built.folder / "photos" / f"{CROPPED_PHOTO}.png"
    post = f"curl -s {url}/collections"
    json = "-H 'content-type: application/json'"
    key = ' -H "authorization: Bearer $KEY"' if os.environ.get(API_KEYS_ENV) else ""
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


def _photo_lines(folder: Path) -> Iterator[dict[str, Any]]:
    """The packaged photos, each written once as a PNG in ``folder``."""
    from service.sample_data import packaged_photos

    folder.mkdir(parents=True, exist_ok=True)
    for name, source, pixels in packaged_photos():
        path = folder / f"{name}.png"
        if not path.exists():
            _save_png(pixels, path)
        yield {"id": name, "name": name, "source": source, "image": f"photos/{name}.png"}


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
