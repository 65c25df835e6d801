"""Tombstones: labels still in a FAISS structure that no search may return.

A bitmap over the label space, one bit a label: marking labels dead costs as many bit
writes as there are labels, whatever the index holds, and searches exclude them through
one FAISS selector that reads the same bitmap (no per-write rebuild of a set). Labels
grow from 1 and are never reused, so the bitmap is at most an eighth of a byte a label.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np


class Tombstones:
    """The dead labels of one index. Not thread-safe: the collection changes it only
    under its write lock, while no search runs."""

    def __init__(self, labels: np.ndarray | None = None) -> None:
        self._bits = np.zeros(0, dtype=np.uint8)
        self._count = 0
        self._selector: Any = None  # "not dead", over the current bitmap
        if labels is not None:
            self.add(labels)

    def __len__(self) -> int:
        return self._count

    def add(self, labels: np.ndarray) -> None:
        """Mark ``labels`` (non-negative) dead; marking one twice counts it once."""
        labels = np.asarray(labels, dtype=np.int64)
        if not len(labels):
            return
        top = int(labels.max()) >> 3
        if top >= len(self._bits):
            # Grows by doubling, so a stream of new labels copies the bitmap rarely.
            grown = np.zeros(max(top + 1, 2 * len(self._bits), 64), dtype=np.uint8)
            grown[: len(self._bits)] = self._bits
            self._bits = grown
            self._selector = None  # it points at the old array
        masks = (1 << (labels & 7)).astype(np.uint8)
        before = self.contains(labels)
        np.bitwise_or.at(self._bits, labels >> 3, masks)
        self._count += int(np.unique(labels[~before]).size)

    def contains(self, labels: np.ndarray) -> np.ndarray:
        """Whether each of ``labels`` (any shape; -1 pads) is dead."""
        labels = np.asarray(labels, dtype=np.int64)
        inside = (labels >= 0) & ((labels >> 3) < len(self._bits))
        out = np.zeros(labels.shape, dtype=bool)
        if inside.any():
            picked = labels[inside]
            shifts = (picked & 7).astype(np.uint8)
            out[inside] = ((self._bits[picked >> 3] >> shifts) & 1).astype(bool)
        return out

    def labels(self) -> np.ndarray:
        """The dead labels, sorted."""
        return np.flatnonzero(np.unpackbits(self._bits, bitorder="little")).astype(np.int64)

    def alive_selector(self) -> Any:
        """A FAISS selector of the labels that are not dead (it reads this bitmap, which
        must not be replaced while a search holds the selector: writes hold it off)."""
        if self._selector is None:
            dead = faiss.IDSelectorBitmap(len(self._bits), faiss.swig_ptr(self._bits))
            self._selector = faiss.IDSelectorNot(dead)
            self._selector.referenced = dead  # the Not does not own its operand
        return self._selector
