"""``vecserve demo``: real GloVe word vectors in the engine, and a few example queries."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from service.cli.options import add_data_option
from service.settings import Settings

if TYPE_CHECKING:
    import numpy as np

    from indexer import Hit

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "run"]

NAME = "demo"
HELP = "index real GloVe word vectors with the engine and run example queries"
DESCRIPTION = None
UPSERT_BATCH = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_option(parser, Settings.model_fields["data_dir"].default)
    parser.add_argument("--words", type=int, default=50_000, help="most frequent words to index")


def run(args: argparse.Namespace) -> int:
    """Index the most frequent GloVe words (cosine) and show search, filters and recommend."""
    import numpy as np

    from indexer import Engine
    from service.sample_data import glove_vectors, glove_words

    names = glove_words(args.words)
    vectors = glove_vectors()
    with Engine(args.data) as engine:
        collection = engine.create_collection(
            "glove-demo", dim=vectors.shape[1], metric="cosine", exist_ok=True
        )
        if collection.count() < len(names):
            started = time.perf_counter()
            for start in range(0, len(names), UPSERT_BATCH):
                part = names[start : start + UPSERT_BATCH]
                collection.upsert(
                    part,
                    np.asarray(vectors[start : start + len(part)]),
                    [{"rank": start + i, "length": len(w)} for i, w in enumerate(part)],
                )
                print(f"\rindexed {start + len(part):,} / {len(names):,} words", end="", flush=True)
            collection.optimize()
            took = time.perf_counter() - started
            print(f"\nindexed {len(names):,} words in {took:.1f}s; index: {collection.index_info}")

        def vector(word: str) -> np.ndarray:
            found = collection.get([word])[0].vector
            assert found is not None  # get returns vectors unless asked not to
            return found

        _show("nearest to 'ocean':", collection.search(vector("ocean"), k=5)[0])
        _show(
            "nearest to 'ocean', words of at most 5 letters:",
            collection.search(vector("ocean"), k=5, filter={"length": {"$lte": 5}})[0],
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


def _show(title: str, hits: Sequence[Hit]) -> None:
    print(f"\n{title}")
    for hit in hits:
        print(f"  {hit.id!s:<14} {hit.score:.3f}")
