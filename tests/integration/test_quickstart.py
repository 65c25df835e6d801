"""``vecserve quickstart``: the demo built from packaged films and photos, its example
queries, its second run (which embeds nothing) and its server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from indexer import Engine
from tests.support.server import NewServer

pytest.importorskip("sentence_transformers")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("bokeh_sampledata")
pytest.importorskip("skimage")

pytestmark = pytest.mark.slow

FILMS = 300
# One torch thread: a second one spin-waiting for a busy core slows the model down.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "VECSERVE_DEVICE": "cpu"}
ENV.pop("VECSERVE_API_KEYS", None)


def quickstart(data: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", "quickstart", "--data", str(data), *args]


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str
    seconds: float

    def examples(self) -> dict[str, list[str]]:
        """Each example's heading, with the result lines printed under it."""
        sections: dict[str, list[str]] = {}
        heading = None
        for line in self.out.splitlines():
            if line.endswith(":") and not line.startswith(" "):
                heading = line
                sections[heading] = []
            elif heading is not None and line.startswith("  "):
                sections[heading].append(line.strip())
            else:
                heading = None
        return sections


def run(data: Path, films: int = FILMS) -> Run:
    started = time.monotonic()
    result = subprocess.run(
        quickstart(data, "--no-serve", "--movies", str(films)),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr, time.monotonic() - started)


def seqs(data: Path) -> dict[str, tuple[int, int]]:
    """Each collection's point count and store sequence (which every write moves)."""
    with Engine(data, background=False, device="cpu") as engine:
        return {
            name: (engine.get_collection(name).count(), engine.get_collection(name).store.seq)
            for name in engine.list_collections()
        }


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quickstart") / "data"


@pytest.fixture(scope="module")
def first(data: Path) -> Run:
    return run(data)


def test_quickstart_indexes_films_and_photos_and_prints_example_results(
    first: Run, data: Path
) -> None:
    assert first.code == 0, first.err
    assert f"movies: {FILMS} films ready (indexed {FILMS} in" in first.out
    assert f"movies: embedding {FILMS} films with minilm" in first.err  # above its progress
    photos = (data / "quickstart" / "photos.jsonl").read_text().splitlines()
    assert len(photos) >= 20  # the photos that ship in scikit-image's wheel, at least
    assert f"photos: {len(photos)} photos ready (indexed {len(photos)} in" in first.out
    counts = {name: count for name, (count, _) in seqs(data).items()}
    assert counts == {"movies": FILMS, "photos": len(photos)}

    examples = first.examples()
    searched = examples["movies like 'a space adventure with robots':"]
    assert len(searched) == 5
    ((heading, recommended),) = [
        (title, hits) for title, hits in examples.items() if title.startswith("recommend")
    ]
    assert len(recommended) == 5
    film = heading.removeprefix("recommend: movies like ").removesuffix(":")
    assert film.startswith("Inception (2010)")  # the example film, as the demo names it
    assert not [hit for hit in recommended if film in hit]  # it is left out of its results
    (photo_hits,) = [hits for title, hits in examples.items() if title.startswith("photos like")]
    assert photo_hits[0].endswith("coffee (scikit-image)")  # a crop finds its photo
    assert "curl -s http://127.0.0.1:8000/collections/movies/search" in first.out
    assert "Serve them: vecserve serve --data" in first.out


def test_a_second_quickstart_reuses_the_collections_without_embedding(
    first: Run, data: Path
) -> None:
    before = seqs(data)
    second = run(data)
    assert second.code == 0, second.err
    assert f"movies: {FILMS} films ready (indexed by an earlier run)" in second.out
    assert "photos ready (indexed by an earlier run)" in second.out
    assert "embedding" not in second.err
    assert seqs(data) == before
    assert second.examples() == first.examples()


def test_fewer_films_than_the_last_run_leave_only_those(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for films in (40, 25):
        result = run(data, films)
        assert result.code == 0, result.err
    assert seqs(data)["movies"][0] == 25


def test_quickstart_serves_the_demo_until_sigterm(
    first: Run, data: Path, new_server: NewServer
) -> None:
    command = [sys.executable, "-m", "service.cli", "quickstart", "--movies", str(FILMS)]
    server = new_server(
        {"OMP_NUM_THREADS": "1"},  # one torch thread (see ENV)
        data_dir=data,
        command=command,
        ready_s=240,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = server.url
    with server:
        process = server.process
        try:
            query = {"text": "a space adventure with robots", "k": 5}
            hits = httpx.post(f"{url}/collections/movies/search", json=query, timeout=60).json()
            searched = first.examples()["movies like 'a space adventure with robots':"]
            assert [hit["payload"]["title"] for hit in hits["hits"]] == [
                line.split("  ", 1)[1].rsplit(" (", 1)[0] for line in searched
            ]
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"Serving {data} on {url}" in out
