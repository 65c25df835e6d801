"""One payload field's index: the (label, value) pairs of a declared field in numpy
columns, answering equality and ranges; and the values a path reaches in a payload. See
:mod:`indexer.payload_index` for the indexes of a collection and the filters they answer.
"""

from __future__ import annotations

import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import Literal

import numpy as np

from indexer.errors import InvalidPayloadIndex
from indexer.filters import array_index, field_segments

FieldType = Literal["keyword", "number"]
FIELD_TYPES: tuple[FieldType, ...] = ("keyword", "number")
# Integers past 2**53 have no exact float64: a field holding one, or a filter naming one,
# is left to SQL, which compares them exactly.
EXACT_INT = 2**53
STRING_TESTS: dict[str, Callable[[str, str], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
SHORT_LIST = 8
Keyword = str | bool


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
        test = STRING_TESTS[op]
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
