"""A job's plan: its arguments checked against its input (fields present, something to
read), the model and batch size it uses, and the identity its checkpoints are kept under."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.embedders.inputs import SOURCE_KEY
from indexer.errors import InvalidInput, JobFailed
from indexer.jobs.config import IndexJobConfig
from indexer.jobs.records import PointFields
from indexer.jobs.sources import Format, Source, Start, detect_format, open_source

DEFAULT_EMBEDDERS = {"text": "minilm", "image": "efficientnet-lite0"}
DEFAULT_BATCH_SIZES = {"text": 4096, "image": 64}
# Records read up front to check that the input is readable and has the fields asked for,
# where no header or schema says so (JSONL).
PEEK_RECORDS = 1000


@dataclass(frozen=True, slots=True)
class JobPlan:
    """A job's arguments, checked against its input."""

    source: Source
    fields: PointFields
    modality: str
    embedder: str
    batch_size: int
    identity: dict[str, Any]
    """What decides the vectors written: the checkpoint's key."""
    kept: dict[str, Any]
    """What decides the payloads written, beside the vectors."""


def plan_job(config: IndexJobConfig) -> JobPlan:
    """Check the arguments against the input; raise :class:`InvalidInput` if they do not fit."""
    path = config.source.expanduser()
    fmt: Format = detect_format(path) if config.format == "auto" else config.format
    source = open_source(path, fmt)
    if fmt == "images":
        fields = _image_folder_fields(config, path)
    else:
        fields = _record_fields(config, path, source)
    if next(iter(source.read(Start(), fields.used)), None) is None:
        # Before the model is loaded or the collection made: nothing would go into it.
        what = "images" if fmt == "images" else "records"
        raise JobFailed(f"no {what} in {str(path)!r}: nothing to index")
    modality = "text" if fields.text_field is not None else "image"
    identity = {
        "source": str(path.resolve()),
        "format": fmt,
        "id_field": fields.id_field,
        "text_field": fields.text_field,
        "image_field": fields.image_field,
        "embedder": config.embedder or DEFAULT_EMBEDDERS[modality],
    }
    if config.url is not None:
        # A local job's checkpoint lives in its collection's folder; a remote one's in a
        # state folder shared by every service and collection.
        identity.update(url=config.url, collection=config.collection)
    return JobPlan(
        source=source,
        fields=fields,
        modality=modality,
        embedder=config.embedder or DEFAULT_EMBEDDERS[modality],
        batch_size=config.batch_size or DEFAULT_BATCH_SIZES[modality],
        identity=identity,
        kept={"payload_fields": list(fields.payload_fields), "store_source": fields.store_source},
    )


def _image_folder_fields(config: IndexJobConfig, path: Path) -> PointFields:
    for option, value in (
        ("--id-field", config.id_field),
        ("--text-field", config.text_field),
        ("--image-field", config.image_field),
    ):
        if value is not None:
            raise InvalidInput(
                f"{option} does not apply to an image folder: its images are embedded and "
                "keyed by their path in the folder"
            )
    if config.payload_fields:
        raise InvalidInput(
            "--payload-fields does not apply to an image folder: the payload is the image's "
            "path (and its folder with --label-from-folder)"
        )
    payload = ("path", "label") if config.label_from_folder else ("path",)
    return PointFields(
        "path", None, "path", payload, path, check_payloads=False, store_source=config.store_source
    )


def _record_fields(config: IndexJobConfig, path: Path, source: Source) -> PointFields:
    if config.label_from_folder:
        raise InvalidInput("--label-from-folder applies to image folders only")
    if config.text_field is None and config.image_field is None:
        raise InvalidInput("say what to embed: give --text-field (or --image-field)")
    fields = PointFields(
        id_field=config.id_field or "id",
        text_field=config.text_field,
        image_field=config.image_field,
        payload_fields=tuple(dict.fromkeys(config.payload_fields)),
        image_root=path.parent,
        check_payloads=source.format == "parquet",
        store_source=config.store_source,
    )
    if fields.store_source and SOURCE_KEY in fields.payload_fields:
        raise InvalidInput(
            f"--payload-fields {SOURCE_KEY!r} and --store-source would both write the "
            f"payload's {SOURCE_KEY!r}: give one"
        )
    columns = source.columns()
    if columns is None:
        columns = _peek_fields(source)
        where = f"the first {PEEK_RECORDS:,} records of {str(path)!r}"
        if columns is None:
            return fields  # an empty input, which the caller refuses
    else:
        where = f"the columns of {str(path)!r}"
    for option, name in (
        ("--id-field", fields.id_field),
        ("--text-field", fields.text_field),
        ("--image-field", fields.image_field),
        *(("--payload-fields", name) for name in fields.payload_fields),
    ):
        if name is not None and name not in columns:
            seen = ", ".join(repr(c) for c in columns[:20]) or "none"
            raise InvalidInput(f"{option} {name!r} is not among {where} (found: {seen})")
    return fields


def _peek_fields(source: Source) -> list[str] | None:
    """The fields seen in the first records, or None for an input with no records.

    Raises:
        JobFailed: none of those records could be read.
    """
    seen: dict[str, None] = {}
    first_error = None
    count = 0
    for item in itertools.islice(source.read(Start()), PEEK_RECORDS):
        count += 1
        if item.fields is None:
            first_error = first_error or f"record {item.position}: {item.error}"
        else:
            seen.update(dict.fromkeys(item.fields))
    if count == 0:
        return None
    if not seen and first_error is not None:
        raise JobFailed(
            f"cannot read {str(source.path)!r} as {source.format.upper()}: none of its first "
            f"{count:,} records is readable ({first_error})"
        )
    return list(seen)
