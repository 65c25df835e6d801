"""``vecserve index``: a batch job that embeds a file or a folder of images into a
collection, in a data folder or on a running service."""

from __future__ import annotations

import argparse
import sys

from indexer.jobs import IndexJobConfig, JobSummary
from service.cli.failure import USAGE, CommandFailed
from service.cli.options import add_data_option, shown
from service.settings import API_KEYS_ENV, CLIENT_API_KEY_ENV

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "run"]

NAME = "index"
HELP = "embed a JSONL, CSV or Parquet file, or a folder of images, into a collection"
DESCRIPTION = (
    "Embed every record of SOURCE and upsert it into a collection (created, cosine, if "
    "missing) in a data folder, or on a running vecserve service with --url. A killed job "
    "run again with the same arguments resumes where it stopped; records that cannot be "
    "indexed go to a reject file with the reason. Run again with only --payload-fields, "
    "--label-from-folder or --store-source changed, it embeds nothing: it rewrites the "
    "payloads and keeps the vectors."
)

_PASSED_THROUGH = (
    "source",
    "collection",
    "format",
    "id_field",
    "text_field",
    "image_field",
    "label_from_folder",
    "store_source",
    "embedder",
    "batch_size",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = IndexJobConfig.model_fields
    parser.add_argument(
        "source", metavar="SOURCE", help="a .jsonl, .csv, .tsv or .parquet file, or a folder"
    )
    parser.add_argument("--collection", required=True, metavar="NAME", help="collection to fill")
    destination = parser.add_mutually_exclusive_group()
    add_data_option(destination, defaults["data"].default)
    destination.add_argument(
        "--url",
        metavar="URL",
        help="send the points to the vecserve service at URL (http://host:port) instead; "
        "the job still embeds, and keeps its checkpoint and reject file in "
        f"{shown(defaults['state_dir'].default / 'jobs')}",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"the service's read-write API key, with --url (default: ${CLIENT_API_KEY_ENV}, "
        f"else the first of ${API_KEYS_ENV})",
    )
    parser.add_argument(
        "--format",
        choices=["auto", "jsonl", "csv", "parquet", "images"],
        default=defaults["format"].default,
        help="input format (default: from the extension; a folder holds images)",
    )
    parser.add_argument(
        "--id-field", metavar="NAME", help="field holding each point's id (default: id)"
    )
    parser.add_argument("--text-field", metavar="NAME", help="field to embed as text")
    parser.add_argument(
        "--image-field", metavar="NAME", help="field holding an image path to embed"
    )
    parser.add_argument(
        "--payload-fields",
        default="",
        metavar="A,B",
        help="comma-separated fields to keep in the payload",
    )
    parser.add_argument(
        "--store-source",
        action="store_true",
        help='also keep what is embedded in each payload, under "_source": {"text": ...}, '
        'or for an image {"image_sha256": ..., "image_path": ...} (the file\'s SHA-256 and '
        "its path as the record gives it; the image itself is not stored)",
    )
    parser.add_argument(
        "--label-from-folder",
        action="store_true",
        help="image folder: keep each image's top-level subfolder as the payload's label",
    )
    parser.add_argument(
        "--embedder",
        metavar="NAME",
        help="embedder name from the allowlist (default: minilm for text, "
        "efficientnet-lite0 for images)",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="read and embed on Ray Data: on the Ray cluster at ADDRESS (auto: the one this "
        "machine is in), or on a Ray started here for the job when ADDRESS is left out; "
        'needs "vecserve[cluster]"',
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="records per batch: embedded in one call, written in one transaction "
        "(default: 4096 texts, 64 images)",
    )


def run(args: argparse.Namespace) -> int:
    """Run an indexing job and print what it did.

    Raises:
        CommandFailed: bad arguments (status 2), or the data folder is open elsewhere.
        VecserveError: the job failed.
    """
    from pydantic import ValidationError

    from indexer.errors import DataFolderInUse
    from service.settings import client_api_key

    if args.url is None:
        destination = {"data": args.data, "api_key": args.api_key}
    else:
        destination = {"url": args.url, "api_key": args.api_key or client_api_key()}
    payload_fields = tuple(f.strip() for f in args.payload_fields.split(",") if f.strip())
    # The other options are named as the config's fields, and pass through as given.
    given = {name: getattr(args, name) for name in _PASSED_THROUGH}
    try:
        config = IndexJobConfig(**destination, **given, payload_fields=payload_fields)
    except ValidationError as exc:
        raise CommandFailed.from_validation(exc, USAGE, options=True) from None
    try:
        summary = _run_job(config, args.ray)
    except DataFolderInUse as exc:
        hint = "if a vecserve service has it open, send the job there with --url URL"
        raise CommandFailed(f"{exc.message}; {hint}") from None
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
    if summary.embedded < summary.indexed:
        print(
            f"  {summary.indexed - summary.embedded:,} of them kept the vector an earlier run "
            "embedded from the same input: only their payloads were rewritten"
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
    model = f"model loaded in {summary.load_s:.1f}s" if summary.embedded else "nothing embedded"
    if config.url:
        print(f"  {model}; the service builds its index itself")
    else:
        print(f"  {model}; index built in {summary.index_s:.1f}s")
    return 0


def _run_job(config: IndexJobConfig, ray: str | None) -> JobSummary:
    """The job, here or with ``--ray`` on Ray Data."""
    from indexer.jobs import ProgressLine, run_index_job

    progress = ProgressLine(sys.stderr)
    if ray is None:
        return run_index_job(config, progress=progress)
    try:
        from service.cluster.data import run_index_job_on_ray
    except ModuleNotFoundError as exc:
        raise CommandFailed(f'--ray needs {exc.name}: pip install "vecserve[cluster]"') from None
    return run_index_job_on_ray(config, address=None if ray == "local" else ray, progress=progress)
