"""A job's checkpoint: how far into its input the collection is known to be complete.

A checkpoint is a small JSON file in the collection's folder (``jobs/<key>.json``), so
dropping the collection drops its checkpoints with it. Its key hashes the source path and
every argument that decides the vectors written (what is embedded, by which model), so only
the same job resumes from it; the source's fingerprint (a file's size and modification
time) tells whether the input is still the one the checkpoint describes. What the job
keeps in payloads (``kept``) is recorded beside: a run with other kept fields reuses the
vectors of the records before ``embedded_to`` and rewrites only their payloads.

It is rewritten, atomically, only after a batch's upsert has returned: everything before
its position is durable in the collection. A job killed at any moment resumes from the
last checkpoint and writes some batches a second time, which upserts make harmless.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from indexer.jobs.sources import Cursor

__all__ = ["Checkpoint", "CheckpointFile", "job_key"]

_FOLDER = "jobs"


def job_key(identity: dict[str, Any]) -> str:
    """A short stable name for a job, from what identifies it."""
    return hashlib.sha256(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class Checkpoint(BaseModel):
    """Progress of one job over one version of its input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity: dict[str, Any]
    fingerprint: dict[str, Any]
    kept: dict[str, Any] = {}
    """What the run keeps in payloads (payload fields, source), which the key leaves out."""
    position: int = 0
    """Position of the first record not yet committed."""
    embedded_to: int = 0
    """Position of the first record whose vector, made from this input by this job's
    model, is not known to be in the collection: a run with other kept fields reuses the
    vectors of the records before it."""
    cursor: Cursor = None
    """Where reading restarts to reach ``position``."""
    units: int = 0
    """Progress units (bytes, rows, files) done, for the progress display."""
    indexed: int = 0
    rejected: int = 0
    rejects_bytes: int = 0
    """Length of the reject file when this checkpoint was written."""
    finished: bool = False
    collection_uid: str | None = None
    """The identity of the collection the points went to (None from older versions)."""
    updated_at: str = ""


class CheckpointFile:
    """The checkpoint of one job in one collection folder, and its reject file."""

    def __init__(self, collection_folder: Path, key: str) -> None:
        folder = collection_folder / _FOLDER
        self.path = folder / f"{key}.json"
        self.rejects_path = folder / f"{key}.rejects.jsonl"

    def load(self) -> Checkpoint | None:
        """The saved checkpoint, or None where there is none (or it is unreadable)."""
        try:
            return Checkpoint.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError):
            # Written by rename, so never half-written; anything else means starting over,
            # which upserts make safe.
            return None

    def save(self, checkpoint: Checkpoint) -> Checkpoint:
        """Write ``checkpoint`` atomically (temp file, fsync, rename) and return it stamped."""
        stamped = checkpoint.model_copy(update={"updated_at": datetime.now(UTC).isoformat()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(stamped.model_dump(mode="json"), option=orjson.OPT_INDENT_2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return stamped
