"""From input records to batches of points to embed: ids, inputs, payloads, rejects."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from indexer.embedders import load_image
from indexer.embedders.inputs import SOURCE_KEY, file_sha256
from indexer.errors import InvalidEmbedderInput, InvalidId
from indexer.jobs.sources import Cursor, Item
from indexer.points import PointId, validate_id

__all__ = ["Batch", "PointFields", "Reject", "read_batches"]


@dataclass(frozen=True, slots=True)
class Reject:
    """A record that could not be indexed: where it is, its id if known, and why."""

    position: int
    id: PointId | None
    reason: str

    def to_json(self) -> bytes:
        return orjson.dumps({"position": self.position, "id": self.id, "reason": self.reason})


@dataclass(frozen=True, slots=True)
class PointFields:
    """Which fields of a record make a point."""

    id_field: str
    text_field: str | None
    image_field: str | None
    payload_fields: tuple[str, ...]
    image_root: Path
    """Folder that relative image paths start from."""
    check_payloads: bool
    """Whether payload values may fail to be JSON (Parquet decimals, bytes, ...)."""
    store_source: bool = False
    """Keep what is embedded in the payload under ``"_source"``, as a collection's
    ``store_source`` does: ``{"text": ...}``, or for an image the SHA-256 of its file and its
    path as the record gives it (``{"image_sha256": ..., "image_path": ...}``)."""

    @property
    def used(self) -> list[str]:
        """Every field the job reads, each once."""
        named = [self.id_field, self.text_field, self.image_field, *self.payload_fields]
        return list(dict.fromkeys(name for name in named if name is not None))


@dataclass(slots=True)
class Batch:
    """Consecutive records: the points to write and the records rejected.

    ``end_position``/``end_cursor`` is where the input continues after the batch, and
    ``units`` the progress units done once it is written.

    An id repeated within the batch makes one point, of its last record (as it would
    across batches, and one upsert never holds an id twice); ``record_counts`` says how
    many records each point stands for.

    A point is ``reused`` when its record comes before the job's ``reuse_until``: an
    earlier run embedded that same input into the collection, so its vector is taken from
    there and only its payload is written anew (its input is checked, not kept: None).
    ``vectors`` holds a row for each point that is not reused, in order.
    """

    ids: list[PointId] = field(default_factory=list)
    inputs: list[Any] = field(default_factory=list)
    payloads: list[dict[str, Any]] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    record_counts: list[int] = field(default_factory=list)
    reused: list[bool] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    end_position: int = 0
    end_cursor: Cursor = None
    units: int = 0
    vectors: np.ndarray | None = None
    _slots: dict[tuple[bool, PointId], int] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(self.record_counts) + len(self.rejects)

    def add(
        self,
        position: int,
        point_id: PointId,
        value: Any,
        payload: dict[str, Any],
        *,
        reused: bool = False,
    ) -> None:
        key = (isinstance(point_id, str), point_id)
        slot = self._slots.get(key)
        if slot is None:
            self._slots[key] = len(self.ids)
            self.ids.append(point_id)
            self.inputs.append(value)
            self.payloads.append(payload)
            self.positions.append(position)
            self.record_counts.append(1)
            self.reused.append(reused)
        else:
            self.inputs[slot] = value
            self.payloads[slot] = payload
            self.positions[slot] = position
            self.record_counts[slot] += 1
            self.reused[slot] = reused

    def keep(self, ok: list[bool], reasons: dict[int, str]) -> None:
        """Drop the points whose ``ok`` is false, rejecting them with ``reasons[i]``."""
        for i, good in enumerate(ok):
            if not good:
                self.rejects.append(Reject(self.positions[i], self.ids[i], reasons[i]))
        self.ids = [x for x, good in zip(self.ids, ok, strict=True) if good]
        self.inputs = [x for x, good in zip(self.inputs, ok, strict=True) if good]
        self.payloads = [x for x, good in zip(self.payloads, ok, strict=True) if good]
        self.positions = [x for x, good in zip(self.positions, ok, strict=True) if good]
        self.record_counts = [x for x, good in zip(self.record_counts, ok, strict=True) if good]
        self.reused = [x for x, good in zip(self.reused, ok, strict=True) if good]
        self._slots.clear()


def read_batches(
    items: Iterable[Item],
    fields: PointFields,
    size: int,
    units_done: Callable[[int, Cursor], int],
    reuse_until: int = 0,
) -> Iterator[Batch]:
    """Group records into batches of ``size`` records (points and rejects together).

    ``units_done(position, cursor)`` measures progress at a batch's end. Images are
    decoded here, so a reader thread takes the decoding off the embedding thread. The
    records before ``reuse_until`` make reused points (see :class:`Batch`).
    """
    batch = Batch()
    for position, cursor, record, error in items:
        if record is not None:
            reused = position < reuse_until
            point_id, value, payload, error = _point(record, fields, read_input=not reused)
            if error is None and point_id is not None:
                batch.add(position, point_id, value, payload, reused=reused)
            else:
                batch.rejects.append(Reject(position, point_id, error or "unreadable"))
        else:
            batch.rejects.append(Reject(position, None, error or "unreadable"))
        batch.end_position = position + 1
        batch.end_cursor = cursor
        if batch.records >= size:
            batch.units = units_done(batch.end_position, batch.end_cursor)
            yield batch
            batch = Batch(end_position=batch.end_position, end_cursor=batch.end_cursor)
    if batch.records:
        batch.units = units_done(batch.end_position, batch.end_cursor)
        yield batch


def _point(
    record: dict[str, Any], fields: PointFields, *, read_input: bool = True
) -> tuple[PointId | None, Any, dict[str, Any], str | None]:
    """The id, the input to embed (None unless ``read_input``) and the payload of a
    record, or the reason it has none."""
    raw_id = record.get(fields.id_field)
    if raw_id is None:
        return None, None, {}, f"missing field {fields.id_field!r}"
    try:
        point_id = validate_id(raw_id)
    except InvalidId as exc:
        return None, None, {}, f"invalid id in field {fields.id_field!r}: {exc.message}"
    payload = {name: record[name] for name in fields.payload_fields if name in record}
    if fields.check_payloads and payload:
        try:
            orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError as exc:
            return point_id, None, {}, f"payload is not JSON: {exc}"
    if fields.text_field is not None:
        text = record.get(fields.text_field)
        if text is None:
            return point_id, None, {}, f"missing field {fields.text_field!r}"
        if not isinstance(text, str):
            kind = type(text).__name__
            return point_id, None, {}, f"field {fields.text_field!r} is a {kind}, not a string"
        if not text.strip():
            return point_id, None, {}, f"field {fields.text_field!r} is empty"
        if fields.store_source:
            payload[SOURCE_KEY] = {"text": text}
        return point_id, text if read_input else None, payload, None
    assert fields.image_field is not None
    location = record.get(fields.image_field)
    if location is None:
        return point_id, None, {}, f"missing field {fields.image_field!r}"
    if not isinstance(location, str) or not location:
        return point_id, None, {}, f"field {fields.image_field!r} is not a file path"
    path = fields.image_root / location
    if fields.store_source:
        try:
            digest = file_sha256(path)
        except OSError as exc:
            return point_id, None, {}, f"cannot read image {location!r}: {exc.strerror or exc}"
        payload[SOURCE_KEY] = {"image_sha256": digest, "image_path": location}
    try:
        image = load_image(path)
    except InvalidEmbedderInput as exc:
        return point_id, None, {}, exc.message
    # A reused record's image is decoded too, though not embedded: one that cannot be was
    # rejected by the run that embedded the input, and the vector its id has (another
    # record's, or a point's from before the job) must not take its payload now.
    return point_id, image if read_input else None, payload, None
