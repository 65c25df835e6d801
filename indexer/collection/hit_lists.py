"""A batch's hits, one list per query, each built when first read.

A hit is a Python object (a named tuple): a batch of 1,024 queries at k = 10 builds
10,240 of them, which costs ten times what the engine's other work on the batch does
(checking and preparing the queries, converting scores, mapping labels to ids). Built
when read, a caller that reads a few rows pays for those alone; one that reads them all
pays what building them at once would have cost, and they are built that way then.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

from indexer.collector import collector_paused
from indexer.points import Hit, PointId, bare_hits


class HitLists(Sequence[list[Hit]]):
    """One list of hits (without payloads) per query, from the batch's ids [nq * k] and
    scores [nq, k], every row full. It reads as the list of lists it stands for: indexing
    and slicing give lists of hits (the same list each time a row is read again), it
    iterates, compares equal to a list of the same lists, and pickles as one."""

    __slots__ = ("_ids", "_rows", "_scores", "_width")

    def __init__(self, ids: np.ndarray, scores: np.ndarray) -> None:
        self._ids: np.ndarray | list[PointId] = ids
        self._scores: np.ndarray | list[float] = scores
        self._width = scores.shape[1]
        self._rows: list[list[Hit] | None] | None = None  # rows read so far

    def __len__(self) -> int:
        return len(self._scores) if self._rows is None else len(self._rows)

    @overload
    def __getitem__(self, index: int) -> list[Hit]: ...

    @overload
    def __getitem__(self, index: slice) -> list[list[Hit]]: ...

    def __getitem__(self, index: int | slice) -> list[Hit] | list[list[Hit]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        rows = self._listed()
        row = rows[index]  # IndexError as a list raises it
        if row is None:
            start = (index % len(rows)) * self._width
            stop = start + self._width
            row = rows[index] = bare_hits(self._ids[start:stop], self._scores[start:stop])
        return row

    def __iter__(self) -> Iterator[list[Hit]]:
        rows = self._listed()
        if all(row is None for row in rows):
            self._build_all(rows)
        return (self[i] for i in range(len(rows)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HitLists | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # as a list's: it compares by value

    def __repr__(self) -> str:
        return repr(list(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))

    def _listed(self) -> list[list[Hit] | None]:
        """The rows read so far, with ids and scores as lists from the first read on (one
        conversion of the whole batch costs less than one a row)."""
        if self._rows is None:
            scores = self._scores
            assert isinstance(scores, np.ndarray)
            self._rows = [None] * len(scores)
            self._ids = self._ids.tolist() if isinstance(self._ids, np.ndarray) else self._ids
            self._scores = scores.ravel().tolist()
        return self._rows

    def _build_all(self, rows: list[list[Hit] | None]) -> None:
        """Every row, in one pass over the batch (see :func:`indexer.collection.results.hits`)."""
        width = self._width
        with collector_paused(len(self._scores)):
            built = bare_hits(self._ids, self._scores)
            rows[:] = [built[start : start + width] for start in range(0, len(built), width)]
