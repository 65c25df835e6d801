"""What a snapshot holds: its manifest (members with their sizes and SHA-256), the names
of its members, and the information kept about a stored snapshot."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from indexer.collection import CollectionConfig
from indexer.errors import InvalidInput, InvalidName, InvalidSnapshot, validation_message

FORMAT: Final = 1
MANIFEST: Final = "manifest.json"
CONFIG: Final = "config.json"
STORE: Final = "store.sqlite3"
INDEX: Final = "index.vsi"
MemberName = Literal["config.json", "store.sqlite3", "index.vsi"]
MAX_MEMBERS = 8
MAX_JSON_BYTES = 1024 * 1024  # manifest.json and config.json are read into memory
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}-\d{8}T\d{6}Z-[0-9a-f]{8}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A stored snapshot: its tar file, and the store sequence number and point count it
    holds (every write committed up to ``seq``, none after)."""

    name: str
    collection: str
    path: Path
    size: int
    sha256: str
    created_at: datetime
    seq: int
    points: int


class MemberEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: MemberName
    size: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256.pattern)


class Manifest(BaseModel):
    """``manifest.json``: what the snapshot holds, and the size and SHA-256 of each member."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1]
    collection: str = Field(max_length=64)
    created_at: datetime
    seq: int = Field(ge=0)
    points: int = Field(ge=0)
    config: CollectionConfig
    members: list[MemberEntry]

    @model_validator(mode="after")
    def _required_members(self) -> Manifest:
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError("a member is listed twice")
        if not {CONFIG, STORE} <= set(names):
            raise ValueError(f"{CONFIG} and {STORE} must be listed")
        return self

    def member(self, name: str) -> MemberEntry | None:
        return next((m for m in self.members if m.name == name), None)


def checked_sha256(value: str) -> str:
    """``value`` as 64 lowercase hex digits; raises :class:`InvalidInput` otherwise."""
    digest = value.strip().lower()
    if not SHA256.match(digest):
        raise InvalidInput("a SHA-256 is 64 hexadecimal digits")
    return digest


def validate_snapshot_name(name: object) -> str:
    if not isinstance(name, str) or not SNAPSHOT_NAME.match(name):
        raise InvalidName(f"invalid snapshot name {name!r}")
    return name


def parse_manifest(data: bytes) -> Manifest:
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        message = validation_message(exc, "manifest")
        raise InvalidSnapshot(f"{MANIFEST} is not valid: {message}") from None
