"""What a batch indexing job is asked to do, and what it reports when done."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["IndexJobConfig", "JobSummary"]


class IndexJobConfig(BaseModel):
    """One indexing job: read ``source``, embed one field of each record, upsert the points.

    Attributes:
        source: a JSONL, CSV or Parquet file, or a folder of images (searched recursively).
        collection: the collection to fill; created (cosine) if it does not exist.
        data: the engine's data folder.
        format: ``auto`` tells a folder (images) or a file's format from its extension.
        id_field: the field holding each point's id (default ``id``). An image folder keys
            points by their relative path and takes no id field.
        text_field: the field to embed as text.
        image_field: the field holding an image path (relative to the source file's folder)
            to embed as an image.
        payload_fields: fields copied into each point's payload (an image folder's payload
            is its ``path``, and its ``label`` with ``label_from_folder``).
        label_from_folder: for an image folder, put each image's top-level subfolder in
            its payload as ``label``.
        embedder: a name from the embedder allowlist, never a path; by default ``minilm``
            for texts and ``efficientnet-lite0`` for images.
        batch_size: records per batch: each batch is embedded in one call, written in one
            transaction, and checkpointed. By default 4096 texts (the model sorts a batch by
            length, so a large one wastes little on padding) or 64 images (each held
            decoded in memory).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Path
    collection: str
    data: Path = Path("./data")
    format: Literal["auto", "jsonl", "csv", "parquet", "images"] = "auto"
    id_field: str | None = Field(default=None, min_length=1)
    text_field: str | None = Field(default=None, min_length=1)
    image_field: str | None = Field(default=None, min_length=1)
    payload_fields: tuple[str, ...] = ()
    label_from_folder: bool = False
    embedder: str | None = Field(default=None, min_length=1)
    batch_size: int | None = Field(default=None, ge=1, le=65_536)

    @model_validator(mode="after")
    def _one_field_to_embed(self) -> IndexJobConfig:
        if self.text_field is not None and self.image_field is not None:
            raise ValueError("give --text-field or --image-field, not both")
        return self


class JobSummary(BaseModel):
    """What a job did in this run (and in all its runs, for a resumed job).

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
