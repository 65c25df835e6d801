"""Index upkeep: the FAISS index is a cache of the store, opened from its file and caught
up, or built (family chosen, trained, calibrated), saved, and rebuilt when it drifts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from indexer.collection.config import CollectionConfig
from indexer.collection.search import StoredVectors
from indexer.devices import Placement
from indexer.indexes import FaissIndex, family_for, load_index, save_index
from indexer.indexes.base import CALIBRATION_QUERIES
from indexer.spec import IndexSpec

log = logging.getLogger(__name__)

INDEX_FILE = "index.vsi"  # in the collection's folder, beside the store
# Rebuild an index once this share of it is tombstones, or an IVF index once the
# collection has grown this many times past the data it was trained on.
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


IndexBuildObserver = Callable[[IndexBuild], None]


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
            index = self.build(stored)
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

    def reconcile(self, index: FaissIndex, live: np.ndarray, stored: StoredVectors) -> None:
        """Bring ``index`` in line with the store: add what it lacks of the ``live`` labels
        (sorted), drop what is gone."""
        have = index.labels()
        gone = np.setdiff1d(have, live, assume_unique=True)
        missing = np.setdiff1d(live, have, assume_unique=True)
        index.remove(gone)
        for labels, vecs in stored(missing):
            index.add(labels, self.config.metric.prepare(vecs))
        if len(gone) or len(missing):
            log.info(
                "collection %s: index caught up (+%d, -%d)",
                self.config.name,
                len(missing),
                len(gone),
            )

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

    def build(self, stored: StoredVectors, current: str | None = None) -> FaissIndex:
        """A fresh index of the right family from every stored vector, calibrated;
        ``current`` is the family serving now, if any (see :meth:`family`)."""
        started = time.perf_counter()
        labels, vecs = self._all_vectors(stored)
        family, spec = self.family(len(labels), current)
        rng = np.random.default_rng(0)
        train = vecs
        if len(vecs) > TRAIN_SAMPLE_MAX:
            train = vecs[rng.choice(len(vecs), TRAIN_SAMPLE_MAX, replace=False)]
        index = family.build(self.config.dim, self.config.metric, spec, train, self._placement)
        if index.knob is None or len(labels) < CALIBRATION_MIN_POINTS:
            index.add(labels, vecs)
        else:
            # Calibrate on points held out of the index, as real queries are, then add them.
            held_out = np.zeros(len(labels), dtype=bool)
            held_out[rng.choice(len(labels), CALIBRATION_QUERIES, replace=False)] = True
            index.add(labels[~held_out], vecs[~held_out])
            self._calibrate(index, vecs[held_out], labels[~held_out], vecs[~held_out])
            index.add(labels[held_out], vecs[held_out])
        name = self.config.name
        build = IndexBuild(name, index.family, len(labels), time.perf_counter() - started)
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
        storage fits now, it outgrew its GPU booking, holds too many tombstones, outgrew
        its IVF training, or doubled since its calibration."""
        family, spec = self.family(n, index.family)
        return (
            family.family != index.family
            or index.over_budget
            or spec.storage != index.storage
            or index.dead_fraction > MAX_DEAD_FRACTION
            or (index.family.startswith("ivf") and n > RETRAIN_GROWTH * index.trained_on)
            or (
                index.knob is not None
                and index.size >= CALIBRATION_MIN_POINTS
                and index.size >= 2 * index.calibrated_on
            )
        )

    def needs_upkeep(self, index: FaissIndex, n: int, unsaved: int) -> bool:
        """Whether background maintenance should run: a rebuild, or a save of an index
        ``unsaved`` changes ahead of its file (a tenth of the collection, 10,000 at least)."""
        return self.needs_rebuild(index, n) or unsaved > max(10_000, n // 10)

    def _all_vectors(self, stored: StoredVectors) -> tuple[np.ndarray, np.ndarray]:
        """Every label and its prepared vector, from the store."""
        labels_parts, vec_parts = [], []
        for labels, vecs in stored(None):
            labels_parts.append(labels)
            vec_parts.append(self.config.metric.prepare(vecs))
        if not labels_parts:
            return np.empty(0, np.int64), np.empty((0, self.config.dim), np.float32)
        return np.concatenate(labels_parts), np.concatenate(vec_parts)

    def _calibrate(
        self, index: FaissIndex, queries: np.ndarray, labels: np.ndarray, vecs: np.ndarray
    ) -> None:
        k = 10
        metric = self.config.metric.faiss_metric
        _, positions = faiss.knn(queries, vecs, k, metric=metric)
        recall = index.calibrate(queries, labels[positions], self.config.index.target_recall)
        log.info(
            "collection %s: %s=%s gives recall@%d %.3f on held-out points",
            self.config.name,
            index.knob,
            index.default_knob,
            k,
            recall,
        )
