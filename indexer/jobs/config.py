"""What a batch indexing job is asked to do, and what it reports when done."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["IndexJobConfig", "JobSummary"]


class IndexJobConfig(BaseModel):
    """One indexing job: read ``source``, embed one field of each record, upsert the points.

    Attributes:
        source: a JSONL, CSV or Parquet file, or a folder of images (searched recursively).
        collection: the collection to fill; created (cosine) if it does not exist.
        data: the engine's data folder, where the points and the job's checkpoint go.
        url: a running vecserve service (``http://host:port``) to send the points to over
            HTTP instead of writing them to ``data``; give one or the other.
        api_key: the service's read-write API key, for ``url``.
        state_dir: for ``url``, the local folder that keeps the job's checkpoint and reject
            file (under ``jobs/``), so that the job resumes as it does for a data folder.
        format: ``auto`` tells a folder (images) or a file's format from its extension.
        id_field: the field holding each point's id (default ``id``). An image folder keys
            points by their relative path and takes no id field.
        text_field: the field to embed as text.
        image_field: the field holding an image path (relative to the source file's folder)
            to embed as an image.
        payload_fields: fields copied into each point's payload (an image folder's payload
            is its ``path``, and its ``label`` with ``label_from_folder``).
        store_source: also keep what is embedded in each payload, under ``"_source"`` as a
            collection's ``store_source`` does: ``{"text": ...}``, or for an image the
            SHA-256 of its file and its path as the record gives it (``{"image_sha256":
            ..., "image_path": ...}``; the image itself is never stored).
        label_from_folder: for an image folder, put each image's top-level subfolder in
            its payload as ``label``.
        embedder: a name from the embedder allowlist, never a path; by default ``minilm``
            for texts and ``efficientnet-lite0`` for images.
        batch_size: records per batch: each batch is embedded in one call, written in one
            transaction, and checkpointed. By default 4096 texts (the model sorts a batch by
            length, so a large one wastes little on padding) or 64 images (each held
            decoded in memory).

    A job run again with only ``payload_fields``, ``label_from_folder`` or
    ``store_source`` changed, over the same input, embeds nothing: it rewrites the
    payloads of the points an earlier run embedded, with their vectors as they are.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Path
    collection: str
    data: Path = Path("./data")
    url: str | None = None
    api_key: SecretStr | None = None
    state_dir: Path = Path("./.vecserve")
    format: Literal["auto", "jsonl", "csv", "parquet", "images"] = "auto"
    id_field: str | None = Field(default=None, min_length=1)
    text_field: str | None = Field(default=None, min_length=1)
    image_field: str | None = Field(default=None, min_length=1)
    payload_fields: tuple[str, ...] = ()
    store_source: bool = False
    label_from_folder: bool = False
    embedder: str | None = Field(default=None, min_length=1)
    batch_size: int | None = Field(default=None, ge=1, le=65_536)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
            raise ValueError(f"{url!r} is not a service URL like http://127.0.0.1:8000")
        return url.rstrip("/") if url else url

    @model_validator(mode="after")
    def _one_field_to_embed(self) -> IndexJobConfig:
        if self.text_field is not None and self.image_field is not None:
            raise ValueError("give --text-field or --image-field, not both")
        return self

    @model_validator(mode="after")
    def _one_destination(self) -> IndexJobConfig:
        if self.url is None:
            if self.api_key is not None:
                raise ValueError("--api-key goes with --url")
            if "state_dir" in self.model_fields_set:
                raise ValueError(
                    "state_dir goes with url: a job into a data folder keeps its checkpoint "
                    "in the collection's folder"
                )
        elif "data" in self.model_fields_set:
            raise ValueError("give --data or --url, not both")
        return self


class JobSummary(BaseModel):
    """What a job did in this run (and in all its runs, for a resumed job).

    ``indexed`` counts records, not points: a record whose id an earlier one had replaces
    that point (the last record of an id wins), and counts as indexed and as ``replaced``;
    ``indexed + rejected`` is the records read. Of ``indexed``, ``embedded`` had their
    vector made by the model in this run; the others kept the vector that an earlier run
    made from the same input (only their payloads were written: the job was run again
    with other kept fields).

    ``elapsed_s`` runs from the first record read to the last batch committed; loading the
    model (``load_s``) and building the collection's index at the end (``index_s``) are
    timed apart.
    """

    model_config = ConfigDict(frozen=True)

    collection: str
    source: Path
    indexed: int
    rejected: int
    total_indexed: int
    total_rejected: int
    embedded: int = 0
    replaced: int = 0
    """Records embedded in this run whose id the collection held already, repeated from
    earlier in the input or indexed before this run: the collection gained ``embedded -
    replaced`` points. Taken from its size before and after, so others writing to it
    meanwhile skew it."""
    resumed_from: int = 0
    """Records already done by earlier runs (0 for a job run from the start)."""
    already_done: bool = False
    """The job had finished before over the same input: nothing was done."""
    elapsed_s: float = 0.0
    load_s: float = 0.0
    index_s: float = 0.0
    rejects_path: Path | None = None
    checkpoint_path: Path

    @property
    def rate(self) -> float:
        """Records read per second in this run (indexed or rejected)."""
        done = self.indexed + self.rejected
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0
