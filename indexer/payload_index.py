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

import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, Literal

import numpy as np
from pydantic import TypeAdapter, ValidationError

from indexer.errors import InvalidPayloadIndex
from indexer.filters import array_index, field_segments

FieldType = Literal["keyword", "number"]
FIELD_TYPES: tuple[FieldType, ...] = ("keyword", "number")
MAX_FIELDS = 32
# Integers past 2**53 have no exact float64: a field holding one, or a filter naming one,
# is left to SQL, which compares them exactly.
EXACT_INT = 2**53
_STRING_TESTS: dict[str, Callable[[str, str], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
SHORT_LIST = 8
_DECLARATION = TypeAdapter(dict[str, FieldType])

Keyword = str | bool


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


class _Missing:
    """Where a path ends at nothing: a missing key, or a scalar or null on the way."""


MISSING = _Missing()


def reached(payload: object, segments: tuple[str, ...]) -> Iterator[object]:
    """The scalars a path reaches, an array's elements included: those that equality and
    comparisons test (see :mod:`indexer.filters`; an array taken by index at the end is
    not looked into, and objects and nested arrays match nothing)."""
    for value, by_index in _places(payload, segments):
        if isinstance(value, list):
            if not by_index:
                yield from (e for e in value if not isinstance(e, dict | list))
        elif not isinstance(value, dict | _Missing):
            yield value


def _places(value: object, segments: tuple[str, ...]) -> Iterator[tuple[object, bool]]:
    """The values at the places the path reaches (:data:`MISSING` where it ends at
    nothing), and whether each was taken by index."""
    key, rest = segments[0], segments[1:]
    if isinstance(value, dict):
        if key not in value:
            yield MISSING, False
        elif rest:
            yield from _places(value[key], rest)
        else:
            yield value[key], False
    elif isinstance(value, list):
        for element in value:
            if isinstance(element, dict):
                yield from _places(element, segments)
        index = array_index(key)
        if index is not None and index < len(value):
            element = value[index]
            if not rest:
                yield element, True
            elif isinstance(element, dict | list):
                yield from _places(element, rest)
    else:
        yield MISSING, False


class _Column:
    """A numpy array grown by appending (capacity doubles), read as a view of its length."""

    def __init__(self, dtype: type[np.generic]) -> None:
        self._data = np.empty(1024, dtype=dtype)
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def append(self, values: np.ndarray) -> None:
        end = self._length + len(values)
        if end > len(self._data):
            grown = np.empty(max(end, 2 * len(self._data)), dtype=self._data.dtype)
            grown[: self._length] = self._data[: self._length]
            self._data = grown
        self._data[self._length : end] = values
        self._length = end  # readers take views of the old length until now

    def view(self) -> np.ndarray:
        return self._data[: self._length]

    def keep(self, mask: np.ndarray) -> None:
        kept = self.view()[mask]
        self._data = np.concatenate([kept, np.empty(max(1024, len(kept)), self._data.dtype)])
        self._length = len(kept)


class FieldIndex:
    """The (label, value) pairs of one field; keyword values as codes of a vocabulary."""

    def __init__(self, path: str, kind: FieldType) -> None:
        self.path = path
        self.kind = kind
        self.segments = field_segments(path, InvalidPayloadIndex)
        self.labels = _Column(np.int64)
        self.values = _Column(np.float64 if kind == "number" else np.int32)
        self.vocabulary: dict[Keyword, int] = {}
        # The points where the path reaches nothing ($exists false), and those that
        # {path: null} matches: a place it ends at nothing, a null, or an array holding one.
        self.absent = _Column(np.int64)
        self.null = _Column(np.int64)
        self._strings = _SortedStrings()
        self.inexact = False  # holds an integer past EXACT_INT
        # The points there before the field was declared (or the index opened), labels up
        # to ``until``, are indexed by backfill, so far those up to ``after``.
        self.after = 0
        self.until = 0

    @property
    def ready(self) -> bool:
        return self.after >= self.until

    def add(self, labels: Sequence[int], payloads: Sequence[object]) -> None:
        """Index the values of these points."""
        pair_labels: list[int] = []
        pair_values: list[float | int] = []
        absent: list[int] = []
        null: list[int] = []
        for label, payload in zip(labels, payloads, strict=True):
            found = is_null = False
            for value, by_index in _places(payload, self.segments):
                if value is MISSING:
                    is_null = True
                    continue
                found = True
                if isinstance(value, list):
                    if by_index:
                        continue  # not looked into: it equals nothing
                    for element in value:
                        if element is None:
                            is_null = True
                        elif not isinstance(element, dict | list):
                            code = self._code(element)
                            if code is not None:
                                pair_labels.append(label)
                                pair_values.append(code)
                elif value is None:
                    is_null = True
                elif not isinstance(value, dict):
                    code = self._code(value)
                    if code is not None:
                        pair_labels.append(label)
                        pair_values.append(code)
            if not found:
                absent.append(label)
            if is_null:
                null.append(label)
        if pair_labels:
            self.values.append(np.asarray(pair_values, dtype=self.values.view().dtype))
            self.labels.append(np.asarray(pair_labels, dtype=np.int64))
        if absent:
            self.absent.append(np.asarray(absent, dtype=np.int64))
        if null:
            self.null.append(np.asarray(null, dtype=np.int64))

    def _code(self, value: object) -> float | int | None:
        if self.kind == "keyword":
            if not isinstance(value, str | bool):
                return None
            code = self.vocabulary.get(value)
            if code is None:
                code = self.vocabulary[value] = len(self.vocabulary)
            return code
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(value, int) and abs(value) > EXACT_INT:
            self.inexact = True
        return value

    def equal_to_any(self, wanted: Sequence[object]) -> np.ndarray | None:
        """Labels (with repeats, dead ones included) of the points holding one of ``wanted``;
        None when this index cannot tell."""
        if self.kind == "keyword":
            if not all(isinstance(v, str | bool) for v in wanted):
                return None
            codes: Sequence[float | int] = [
                self.vocabulary[v] for v in wanted if v in self.vocabulary
            ]
        elif all(_exact_number(v) for v in wanted) and not self.inexact:
            codes = wanted  # type: ignore[assignment]
        else:
            return None
        values = self.values.view()
        if len(codes) <= SHORT_LIST:  # a few comparisons beat np.isin's sort or table
            holds = np.zeros(len(values), dtype=bool)
            for code in codes:
                holds |= values == code
        else:
            holds = np.isin(values, np.asarray(codes, dtype=values.dtype))
        found: np.ndarray = self.labels.view()[holds]
        return found

    def compared(self, op: str, bound: object) -> np.ndarray | None:
        """Labels of the points holding a value ``op`` ``bound`` ($gt...); None when this
        index cannot tell."""
        if self.kind == "keyword":
            if not isinstance(bound, str):
                return None  # numbers compare with numbers only, which it does not hold
            codes = self._strings.compared(self.vocabulary, op, bound)
            holds = np.zeros(len(self.vocabulary), dtype=bool)
            holds[codes] = True
            found: np.ndarray = self.labels.view()[holds[self.values.view()]]
            return found
        if not _exact_number(bound) or self.inexact:
            return None
        values = self.values.view()
        limit = float(bound)  # type: ignore[arg-type]
        holds = {
            "$gt": values > limit,
            "$gte": values >= limit,
            "$lt": values < limit,
            "$lte": values <= limit,
        }[op]
        return self.labels.view()[holds]

    def compact(self, live: np.ndarray) -> None:
        """Drop the pairs of dead points."""
        labels = self.labels.view()
        keep = live[labels]
        self.values.keep(keep)
        self.labels.keep(keep)
        for column in (self.absent, self.null):
            column.keep(live[column.view()])


class _SortedStrings:
    """The strings of a keyword vocabulary in code point order (as SQLite compares text),
    for ranges: sorted again once the strings added since are more than an eighth of
    them, which are checked one by one until then."""

    def __init__(self) -> None:
        self._strings: list[str] = []
        self._codes = np.empty(0, dtype=np.int32)
        self._covers = 0  # the vocabulary's first entries (by code) that are sorted here

    def compared(self, vocabulary: dict[Keyword, int], op: str, bound: str) -> np.ndarray:
        """The codes of the strings ``op`` ``bound`` (``$gt``...)."""
        if len(vocabulary) - self._covers > max(64, self._covers // 8):
            self._sort(vocabulary)
        # Read once: a concurrent reader may sort again meanwhile (each sort is whole).
        strings, codes, covers = self._strings, self._codes, self._covers
        if op in ("$gt", "$gte"):
            start = (bisect_right if op == "$gt" else bisect_left)(strings, bound)
            found = codes[start:]
        else:
            stop = (bisect_left if op == "$lt" else bisect_right)(strings, bound)
            found = codes[:stop]
        test = _STRING_TESTS[op]
        newer = islice(reversed(vocabulary.items()), len(vocabulary) - covers)
        extra = [code for value, code in newer if isinstance(value, str) and test(value, bound)]
        return np.concatenate([found, np.asarray(extra, dtype=np.int32)]) if extra else found

    def _sort(self, vocabulary: dict[Keyword, int]) -> None:
        pairs = sorted((v, c) for v, c in vocabulary.items() if isinstance(v, str))
        codes = np.fromiter((c for _, c in pairs), dtype=np.int32, count=len(pairs))
        strings = [v for v, _ in pairs]
        self._strings, self._codes, self._covers = strings, codes, len(vocabulary)


def _exact_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not isinstance(value, int) or abs(value) <= EXACT_INT


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
        if op in _STRING_TESTS:
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
