"""Index upkeep: the FAISS index is a cache of the store, opened from its file and caught
up, or built (family chosen, trained, calibrated), saved, recalibrated as it grows, and
rebuilt only when it must be (another family, a retrain, too many tombstones).

A build streams the store twice, a chunk at a time (a sample and the held-out calibration
queries, then every vector into the index), so it never holds the collection's vectors
beside the index that it fills."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.collection.config import CollectionConfig
from indexer.collection.search import StoredVectors, exact
from indexer.devices import Placement
from indexer.indexes import FaissIndex, family_for, load_index, save_index
from indexer.indexes.knob import CALIBRATION_QUERIES, calibrate
from indexer.spec import IndexSpec, SearchParams

log = logging.getLogger(__name__)

INDEX_FILE = "index.vsi"  # in the collection's folder, beside the store
# Rebuild an index once this share of it is tombstones, or an IVF index once a build
# would train it on this many times the data it was trained on. Training takes a sample
# of at most TRAIN_SAMPLE_MAX points, so an index trained on a full sample is never
# retrained for growth: a rebuild would choose the same lists from a sample of the same
# size (and, judged against the collection's size instead, every write past four such
# samples started one more rebuild of the whole index).
MAX_DEAD_FRACTION = 0.2
RETRAIN_GROWTH = 4
CALIBRATION_MIN_POINTS = 1000
TRAIN_SAMPLE_MAX = 256 * 1024


@dataclass(frozen=True, slots=True)
class IndexBuild:
    """An index built from a collection's whole store: on open (missing or damaged index
    file), or when maintenance moves it to another family, retrains or compacts it."""

    collection: str
    family: str
    points: int
    seconds: float


class BuildCancelled(Exception):
    """A build given up between two chunks of the store, because its caller asked."""


IndexBuildObserver = Callable[[IndexBuild], None]
IndexSearch = Callable[[np.ndarray, int, SearchParams], np.ndarray]
"""Labels [nq, k] that the serving index finds, at the given parameters (the collection
takes its lock around each call)."""


class IndexUpkeep:
    """Opens, builds, places, saves and judges one collection's index. It holds no lock
    and no index: the collection calls it under its own locks, with the index it serves."""

    def __init__(
        self,
        config: CollectionConfig,
        folder: Path,
        placement: Placement,
        on_build: IndexBuildObserver | None = None,
    ) -> None:
        self.config = config
        self.path = folder / INDEX_FILE
        self._placement = placement
        self._on_build = on_build

    def open(self, seq: int, live: np.ndarray, stored: StoredVectors) -> tuple[FaissIndex, bool]:
        """The index for a store at ``seq`` holding ``live`` labels: the saved one caught
        up, or a new one built and saved when there is none to load; and whether it is
        ahead of its file."""
        loaded = load_index(self.path, self.config.metric, self.config.dim)
        if loaded is None:
            index = self.build(stored, len(live))
            self.save(index, seq)
            behind = False
        else:
            index, saved_seq = loaded
            behind = saved_seq != seq
            if behind:
                self.reconcile(index, live, stored)
        self.place(index)
        return index, behind

    def place(self, index: FaissIndex) -> None:
        """Put ``index`` on the GPUs when there are any and it fits (else it says why)."""
        if self._placement.gpus:
            index.place_on_gpu(
                self._placement, self.config.index.model_copy(update={"storage": index.storage})
            )

    def reconcile(self, index: FaissIndex, live: np.ndarray, stored: StoredVectors) -> int:
        """Bring ``index`` in line with the store: add what it lacks of the ``live`` labels
        (sorted), drop what is gone. Returns how many it added."""
        missing = index.restrict_to(live)
        self.add_stored(index, missing, stored)
        if len(missing):
            log.info("collection %s: index caught up (+%d)", self.config.name, len(missing))
        return len(missing)

    def apply(
        self,
        index: FaissIndex,
        change: Callable[[FaissIndex], object],
        live: Callable[[], np.ndarray],
        stored: StoredVectors,
    ) -> None:
        """Apply a committed change to ``index``. The store is already the truth: if the
        index fails to follow, it is reconciled with the store (``live`` labels) at once."""
        try:
            change(index)
        except Exception:
            log.exception(
                "collection %s: index update failed; reconciling with the store",
                self.config.name,
            )
            self.reconcile(index, live(), stored)

    def add_stored(self, index: FaissIndex, labels: np.ndarray, stored: StoredVectors) -> None:
        """Add the stored vectors of ``labels`` to ``index``."""
        for chunk, vecs in stored(labels):
            index.add(chunk, self.config.metric.prepare(vecs))

    def build(
        self,
        stored: StoredVectors,
        n: int,
        current: str | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> FaissIndex:
        """A fresh index of the right family for the store's ``n`` or so points, filled
        with every stored vector and calibrated; ``current`` is the family serving now,
        if any (see :meth:`family`). Raises :class:`BuildCancelled` once ``cancelled``
        says so, between two chunks of the store (a close need not wait for a build
        that streams millions of points twice)."""
        started = time.perf_counter()
        stored = _cancellable(stored, cancelled)
        dim, family, spec = self.config.dim, *self.family(n, current)
        rng = np.random.default_rng(0)
        trains = family.trains(dim, spec, n)
        sample = _Sample(rng, n, TRAIN_SAMPLE_MAX if trains else 4 * CALIBRATION_QUERIES)
        for labels, vecs in self._prepared(stored(None)):
            sample.take(labels, vecs)
        if cancelled():  # before the training, which cannot be cut short
            raise BuildCancelled
        train = sample.vectors() if trains else np.empty((0, dim), np.float32)
        index = family.build(dim, self.config.metric, spec, train, self._placement)
        del train
        calibrating = index.knob is not None and sample.seen >= CALIBRATION_MIN_POINTS
        held_labels, held = sample.held_out(CALIBRATION_QUERIES if calibrating else 0)
        points = 0

        def fill() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            nonlocal points
            for labels, vecs in self._prepared(stored(None)):
                keep = ~np.isin(labels, held_labels)
                index.add(labels[keep], vecs[keep])
                points += len(labels)
                yield labels[keep], vecs[keep]

        if calibrating:
            # Calibrate on points held out of the index, as real queries are, then add
            # them; their exact neighbours are found in the pass that fills the index.
            _, truth = exact(held, K, fill(), self.config.metric)
            self._calibrate(index, held, truth)
        else:
            for _ in fill():
                pass
        index.add(held_labels, held)
        name = self.config.name
        build = IndexBuild(name, index.family, points, time.perf_counter() - started)
        log.info(
            "collection %s: built %s index over %d points in %.1fs",
            name,
            build.family,
            build.points,
            build.seconds,
        )
        if self._on_build is not None:
            try:
                self._on_build(build)
            except Exception:  # an observer's failure must not fail a build
                log.exception("collection %s: index build observer failed", name)
        return index

    def family(self, n: int, current: str | None = None) -> tuple[type[FaissIndex], IndexSpec]:
        """The family (and spec) to serve ``n`` points with: ``family_for``, except that an
        empty collection serves flat. A bulk load into a new HNSW collection then builds its
        graph once, from every point, and calibrates it, rather than growing it point by
        point only for the first calibration to rebuild it.

        A collection that shrinks below the size its ``current`` family needs keeps that
        family until it has half that size: one that hovers at a threshold would otherwise
        rebuild its whole index at each crossing."""
        spec, dim, gpus = self.config.index, self.config.dim, self._placement.gpus
        if n == 0:
            spec = spec.model_copy(update={"kind": "flat"})
        family, chosen = family_for(spec, dim, n, gpus)
        if n and current not in (None, family.family) and family.family == "flat":
            kept, kept_spec = family_for(spec, dim, 2 * n, gpus)
            if kept.family == current:
                return kept, kept_spec
        return family, chosen

    def save(self, index: FaissIndex, seq: int) -> None:
        save_index(self.path, index, seq)

    def needs_rebuild(self, index: FaissIndex, n: int) -> bool:
        """Whether ``index``, serving ``n`` points, should be rebuilt: another family or
        storage fits now, it outgrew its GPU booking, holds too many tombstones, or
        outgrew its IVF training (while a larger training sample can be had). Growth alone
        never rebuilds: new points are added to the index as they come, and its knob is
        recalibrated (see :meth:`needs_calibration`)."""
        family, spec = self.family(n, index.family)
        return (
            family.family != index.family
            or index.over_budget
            or spec.storage != index.storage
            or index.dead_fraction > MAX_DEAD_FRACTION
            or (index.family.startswith("ivf") and self._outgrew_training(index, n))
        )

    def _outgrew_training(self, index: FaissIndex, n: int) -> bool:
        """Whether a build for ``n`` points would train on RETRAIN_GROWTH times the
        sample ``index`` was trained on (see TRAIN_SAMPLE_MAX)."""
        return min(n, TRAIN_SAMPLE_MAX) > RETRAIN_GROWTH * index.trained_on

    def needs_calibration(self, index: FaissIndex) -> bool:
        """Whether ``index`` doubled since its knob was calibrated."""
        return (
            index.knob is not None
            and index.size >= CALIBRATION_MIN_POINTS
            and index.size >= 2 * index.calibrated_on
        )

    def needs_upkeep(self, index: FaissIndex, n: int, unsaved: int) -> bool:
        """Whether background maintenance should run: a rebuild, a recalibration, or a
        save of an index ``unsaved`` changes ahead of its file (half the collection,
        10,000 at least: a collection loaded from empty then writes its index files about
        three times its final size in all, where a tenth would write eleven times)."""
        return (
            self.needs_rebuild(index, n)
            or self.needs_calibration(index)
            or unsaved > max(10_000, n // 2)
        )

    def recalibrate(
        self, index: FaissIndex, live: np.ndarray, stored: StoredVectors, search: IndexSearch
    ) -> None:
        """Calibrate the knob of the serving ``index`` again, on points it holds: each
        query is a stored point, left out of its own neighbours on both sides. The exact
        neighbours come from the store, read without any lock; only ``search`` (a query
        chunk at a time) takes the collection's."""
        rng = np.random.default_rng(len(live))
        picked = np.sort(rng.choice(live, min(CALIBRATION_QUERIES, len(live)), replace=False))
        own, queries = _concat(self._prepared(stored(picked)), self.config.dim)
        _, found = exact(queries, K + 1, stored(None), self.config.metric)
        truth = _without_own(found, own, K)
        size = index.size

        def search_without_own(q: np.ndarray, k: int, params: SearchParams) -> np.ndarray:
            rows = [
                search(q[start : start + SEARCH_CHUNK], k + 1, params)
                for start in range(0, len(q), SEARCH_CHUNK)
            ]
            return _without_own(np.concatenate(rows), own, k)

        recall = calibrate(
            index, queries, truth, self.config.index.target_recall, search_without_own
        )
        index.calibrated_on = size
        self._log_calibration(index, recall)

    def _prepared(
        self, chunks: Iterable[tuple[np.ndarray, np.ndarray]]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for labels, vecs in chunks:
            yield labels, self.config.metric.prepare(vecs)

    def _calibrate(self, index: FaissIndex, queries: np.ndarray, truth: np.ndarray) -> None:
        recall = calibrate(index, queries, truth, self.config.index.target_recall)
        self._log_calibration(index, recall)

    def _log_calibration(self, index: FaissIndex, recall: float) -> None:
        log.info(
            "collection %s: %s=%s gives recall@%d %.3f on held-out points",
            self.config.name,
            index.knob,
            index.default_knob,
            K,
            recall,
        )


K = 10  # calibration's k
SEARCH_CHUNK = 2  # calibration queries a lock hold: a few milliseconds of searching


class _Sample:
    """A uniform random sample, of about ``size`` vectors, of a stream of (labels,
    vectors) chunks that holds about ``expected`` vectors."""

    def __init__(self, rng: np.random.Generator, expected: int, size: int) -> None:
        self._rng = rng
        self._share = min(1.0, size / max(expected, 1))
        self._size = size
        self.seen = 0
        self._labels: list[np.ndarray] = []
        self._vecs: list[np.ndarray] = []

    def take(self, labels: np.ndarray, vecs: np.ndarray) -> None:
        self.seen += len(labels)
        keep = self._rng.random(len(labels)) < self._share
        self._labels.append(labels[keep])
        self._vecs.append(np.ascontiguousarray(vecs[keep]))

    def vectors(self) -> np.ndarray:
        return _concat(zip(self._labels, self._vecs, strict=True), 0)[1][: self._size]

    def held_out(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` of the sampled points (fewer if the sample is smaller), by label."""
        labels, vecs = _concat(zip(self._labels, self._vecs, strict=True), 0)
        picked = np.sort(self._rng.choice(len(labels), min(n, len(labels)), replace=False))
        return labels[picked], np.ascontiguousarray(vecs[picked])


def _cancellable(stored: StoredVectors, cancelled: Callable[[], bool]) -> StoredVectors:
    """``stored``, raising :class:`BuildCancelled` before each chunk once ``cancelled``."""

    def chunks(labels: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for chunk in stored(labels):
            if cancelled():
                raise BuildCancelled
            yield chunk

    return chunks


def _concat(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]], dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, vectors) chunks joined into one of each."""
    labels, vecs = [], []
    for chunk_labels, chunk_vecs in chunks:
        labels.append(chunk_labels)
        vecs.append(chunk_vecs)
    if not labels:
        return np.empty(0, np.int64), np.empty((0, dim), np.float32)
    return np.concatenate(labels), np.concatenate(vecs)


def _without_own(found: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` labels of each row of ``found`` other than the row's own label."""
    keep = found != own[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, axis=1)
