"""Payload field indexes: in-memory columns of declared payload fields, answering filters
without reading a payload.

A collection declares fields by dotted path, each ``keyword`` (strings and booleans) or
``number`` (integers and floats). For each, an index holds (label, value) pairs: every
value of its type that the path reaches in a point, an array's elements included, with
the semantics of :mod:`indexer.filters`; and the points where the path reaches nothing,
and those that a null matches. A filter whose every condition an index answers exactly
(equality, ``$in``, ``$ne``, ``$nin`` with values of its type or null; ``$exists``;
ranges on numbers in a number index, on strings in a keyword one; ``$and``, ``$or``,
``$not`` of these) becomes a boolean mask over labels by a few numpy operations,
whatever its selectivity; any other filter is left to SQL.

The store of record is SQLite: the declaration is in its ``meta`` table, written in a
transaction, and the columns are derived from the payloads, like a FAISS index. They are
changed under the collection's write lock in the same step as the index, right after the
transaction commits, so a search never sees points without their values; at open and on a
new declaration, the points already there are read in the background in batches
(:meth:`PayloadIndexes.backfill`), and until a field is ``ready`` filters on it go to SQL.

Labels are never reused (an update takes a new one), so a pair is never changed: pairs of
deleted points stay until compaction, and a mask of the live labels keeps them out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from indexer.errors import InvalidPayloadIndex
from indexer.field_index import FIELD_TYPES, STRING_TESTS, FieldIndex, FieldType
from indexer.filters import field_segments

MAX_FIELDS = 32
_DECLARATION = TypeAdapter(dict[str, FieldType])


def parse_declaration(declared: object) -> dict[str, FieldType]:
    """``{path: type}`` checked: dotted paths as filters take them, known types."""
    try:
        fields = _DECLARATION.validate_python(declared)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        raise InvalidPayloadIndex(
            f"payload indexes are {{field: type}} with type one of {', '.join(FIELD_TYPES)}"
            f"; {where or 'the declaration'}: {problem['msg']}"
        ) from None
    if len(fields) > MAX_FIELDS:
        raise InvalidPayloadIndex(f"at most {MAX_FIELDS} payload fields can be indexed")
    for path in fields:
        field_segments(path, InvalidPayloadIndex)
    return fields


class PayloadIndexes:
    """The indexed fields of one collection, and the live labels.

    Changes come one at a time under the collection's write lock, but for
    :meth:`backfill`, which runs under its read lock (no write can interleave) on a field
    that searches do not read until :meth:`mark_ready`; :meth:`select` runs under the read
    lock.
    """

    def __init__(self, live: np.ndarray) -> None:
        """``live``: the labels of the points there are."""
        self.fields: dict[str, FieldIndex] = {}
        self._live = np.zeros(max(1024, int(live.max()) + 1 if len(live) else 0), dtype=bool)
        self._live[live] = True
        self._top = int(live.max()) + 1 if len(live) else 0  # labels are below it
        self._dead = 0  # points deleted since the pairs were last compacted
        self.deletes = 0  # points deleted (or replaced) since the collection opened

    # -- declaration ---------------------------------------------------------------------

    def declare(self, fields: Mapping[str, FieldType]) -> None:
        """Make the index match the declaration. A new field (or one of a new type) starts
        empty: :meth:`upserted` fills it from now on, and :meth:`backfill` with the points
        already there."""
        for path in list(self.fields):
            if fields.get(path) != self.fields[path].kind:
                del self.fields[path]
        for path, kind in fields.items():
            if path not in self.fields:
                field = self.fields[path] = FieldIndex(path, kind)
                field.until = self._top - 1

    def declared(self) -> dict[str, FieldType]:
        """``{path: type}`` of the indexed fields."""
        return {p: f.kind for p, f in self.fields.items()}

    def status(self) -> dict[str, dict[str, Any]]:
        """``{path: {type, state: "indexing" | "ready", indexed, total}}``."""
        live = self._live[: self._top]
        total = int(live.sum())
        return {
            path: {
                "type": field.kind,
                "state": "ready" if field.ready else "indexing",
                "indexed": total - int(live[field.after + 1 : field.until + 1].sum()),
                "total": total,
            }
            for path, field in self.fields.items()
        }

    def pending(self) -> dict[str, tuple[int, int]]:
        """The fields still to backfill: path -> (after, until), the labels to do."""
        return {p: (f.after, f.until) for p, f in self.fields.items() if not f.ready}

    def backfill(
        self, path: str, labels: Sequence[int], payloads: Sequence[object], through: int
    ) -> None:
        """Index points there before ``path`` was declared: these, and so all those with
        labels up to ``through``."""
        field = self.fields.get(path)
        if field is not None and not field.ready:
            field.add(labels, payloads)
            field.after = through

    # -- writes --------------------------------------------------------------------------

    def upserted(
        self, labels: np.ndarray, payloads: Sequence[object], replaced: np.ndarray
    ) -> None:
        """Points ``labels`` (new, each above every label before) were written with
        ``payloads``; ``replaced`` are gone."""
        self.deleted(replaced)
        if not len(labels):
            return
        top = int(labels.max()) + 1
        if top > len(self._live):
            grown = np.zeros(max(top, 2 * len(self._live)), dtype=bool)
            grown[: self._top] = self._live[: self._top]
            self._live = grown
        self._live[labels] = True
        self._top = max(self._top, top)
        listed = labels.tolist()
        for field in self.fields.values():
            field.add(listed, payloads)

    def deleted(self, labels: np.ndarray) -> None:
        if not len(labels):
            return
        self._live[labels] = False
        self._dead += len(labels)
        self.deletes += len(labels)
        if self._dead > 65_536 and self._dead > int(self._live.sum()):
            for field in self.fields.values():
                field.compact(self._live)
            self._dead = 0

    @property
    def top(self) -> int:
        """One past the largest label written so far: every later write's are above."""
        return self._top

    def live(self, labels: np.ndarray) -> np.ndarray:
        """Which of ``labels`` are of points there are."""
        inside = labels < self._top
        found = np.zeros(len(labels), dtype=bool)
        found[inside] = self._live[labels[inside]]
        return found

    # -- reads ---------------------------------------------------------------------------

    def select(self, spec: dict[str, Any]) -> np.ndarray | None:
        """The sorted labels of the live points matching a valid filter, or None when a
        condition in it names a field not indexed (or not ready), or one its index cannot
        answer exactly."""
        if not self.fields:
            return None
        mask = _Evaluation(self).filter(spec)
        if mask is None:
            return None
        return np.flatnonzero(mask & self._live[: self._top])


class _Evaluation:
    """A filter as a mask over the labels below ``top``, or None where it cannot be."""

    def __init__(self, indexes: PayloadIndexes) -> None:
        self.fields = indexes.fields
        self.top = indexes._top
        self.live = indexes._live[: indexes._top]

    def mask(self, labels: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.top, dtype=bool)
        mask[labels] = True
        return mask

    def negate(self, mask: np.ndarray | None) -> np.ndarray | None:
        return None if mask is None else self.live & ~mask

    def all_of(self, masks: Iterator[np.ndarray | None]) -> np.ndarray | None:
        result: np.ndarray | None = None
        for mask in masks:
            if mask is None:
                return None
            result = mask if result is None else result & mask
        return result

    def any_of(self, masks: Iterator[np.ndarray | None]) -> np.ndarray | None:
        result: np.ndarray | None = None
        for mask in masks:
            if mask is None:
                return None
            result = mask if result is None else result | mask
        return result

    def filter(self, spec: dict[str, Any]) -> np.ndarray | None:
        return self.all_of(self.part(key, value) for key, value in spec.items())

    def part(self, key: str, value: Any) -> np.ndarray | None:
        if key == "$and":
            return self.all_of(self.filter(s) for s in value)
        if key == "$or":
            return self.any_of(self.filter(s) for s in value)
        if key == "$not":
            return self.negate(self.filter(value))
        field = self.fields.get(key)
        if field is None or not field.ready:
            return None
        return self.condition(field, value)

    def condition(self, field: FieldIndex, condition: Any) -> np.ndarray | None:
        if not isinstance(condition, dict):
            return self.equal(field, [condition])
        return self.all_of(self.operator(field, op, arg) for op, arg in condition.items())

    def operator(self, field: FieldIndex, op: str, arg: Any) -> np.ndarray | None:
        if op == "$eq":
            return self.equal(field, [arg])
        if op == "$ne":
            return self.negate(self.equal(field, [arg]))
        if op in ("$in", "$nin"):
            found = self.equal(field, arg) if arg else np.zeros(self.top, dtype=bool)
            return found if op == "$in" else self.negate(found)
        if op == "$not":
            return self.negate(self.condition(field, arg))
        if op in STRING_TESTS:
            labels = field.compared(op, arg)
            return None if labels is None else self.mask(labels)
        if op == "$exists":
            absent = self.mask(field.absent.view())
            return self.negate(absent) if arg else absent
        return None

    def equal(self, field: FieldIndex, wanted: list[Any]) -> np.ndarray | None:
        values = [v for v in wanted if v is not None]
        labels = field.equal_to_any(values) if values else np.empty(0, dtype=np.int64)
        if labels is None:
            return None
        if len(values) < len(wanted):  # null: a missing value, a null, or one in an array
            labels = np.concatenate([labels, field.null.view()])
        return self.mask(labels)
