"""Running an indexing job: check it, resume it, pipe its input through the model into
the collection, and report."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from indexer.embedders import Embedder, EmbedderRegistry, default_embedder_configs
from indexer.engine import Engine, validate_name
from indexer.errors import InvalidEmbedderInput, InvalidInput, JobFailed
from indexer.jobs.checkpoint import Checkpoint, CheckpointFile, job_key
from indexer.jobs.config import IndexJobConfig, JobSummary
from indexer.jobs.pipeline import run_pipeline
from indexer.jobs.plan import JobPlan, plan_job
from indexer.jobs.progress import JobProgress
from indexer.jobs.records import Batch, Reject, read_batches
from indexer.jobs.sources import Start
from indexer.jobs.targets import LocalTarget, Target

__all__ = ["EmbedStages", "EmbedWork", "embed_stage", "local_stages", "run_index_job"]


def run_index_job(
    config: IndexJobConfig,
    *,
    engine: Engine | None = None,
    registry: EmbedderRegistry | None = None,
    progress: JobProgress | None = None,
    stages: EmbedStages | None = None,
) -> JobSummary:
    """Index ``config.source`` into ``config.collection``, resuming an interrupted run.

    Args:
        config: what to index, and how; with ``config.url``, the points go to that vecserve
            service over HTTP (see :mod:`indexer.jobs.remote`) instead of a data folder.
        engine: the engine to write through; by default one is opened on ``config.data``
            (and closed at the end). Not for a job with a url.
        registry: the embedder allowlist; by default the engine's (when given) or
            :func:`default_embedder_configs`.
        progress: told about progress after every committed batch.
        stages: what reads and embeds the batches; by default :func:`local_stages`
            (threads in this process); a cluster's runs them on Ray Data.

    Returns:
        What the job did; ``already_done`` when the same job had finished over the same
        input, in which case nothing was read or written.

    Raises:
        InvalidInput: bad arguments: a missing source, an unknown format, a field that the
            input does not have, an embedder that cannot embed this input.
        EmbedderNotFound: the embedder is not in the allowlist.
        CollectionExists: the collection holds vectors of another embedder.
        DimensionMismatch: the collection's dimension is not the embedder's.
        EmbedderUnavailable: the model could not be loaded.
        JobFailed: the input could not be read at all, holds no records, no record of it
            could be indexed (every one was rejected), or the service refused the points
            or stayed out of reach.
    """
    if engine is not None and config.url is not None:
        raise InvalidInput("a job that sends its points to a url writes through no engine")
    if registry is None:
        registry = engine.embedders if engine else EmbedderRegistry(default_embedder_configs())
    plan = plan_job(config)
    registry.config(plan.embedder)  # an unknown name fails before any folder is made
    validate_name(config.collection)
    with _target(config, plan.embedder, engine, registry) as target:
        return _run(config, plan, target, registry, progress, stages or local_stages)


@dataclass(frozen=True)
class EmbedWork:
    """What the stages of a job get.

    ``batches`` makes the iterator of batches (a callable, so that it can run elsewhere);
    ``embed`` turns a batch read into a batch embedded (rejecting what cannot be); ``write``
    takes each embedded batch, in input order. ``registry``, ``embedder`` and ``modality``
    say which model ``embed`` needs, for stages that run it elsewhere.
    """

    batches: Callable[[], Iterator[Batch]]
    embed: Callable[[Batch], Batch]
    write: Callable[[Batch], None]
    registry: EmbedderRegistry
    embedder: str
    modality: str


EmbedStages = Callable[[EmbedWork], None]
"""Reads the job's batches, embeds them and hands each to ``write`` in input order."""


def local_stages(work: EmbedWork) -> None:
    """Read, embed and write in three threads of this process (:func:`run_pipeline`)."""
    run_pipeline(work.batches(), work.embed, work.write)


@contextmanager
def _target(
    config: IndexJobConfig, embedder: str, engine: Engine | None, registry: EmbedderRegistry
) -> Iterator[Target]:
    """Where the job's points go: the service at ``config.url``, or a collection of
    ``engine`` (by default one opened on ``config.data``)."""
    if config.url is not None:
        try:
            from indexer.jobs.remote import RemoteTarget  # the SDK, for the jobs that need it
        except ModuleNotFoundError as exc:
            if exc.name != "vecserve_client":
                raise
            raise JobFailed(
                "sending to a service (--url) needs the SDK, vecserve-client: from a checkout, "
                'pip install ./clients/python ".[remote]"'
            ) from None

        api_key = config.api_key.get_secret_value() if config.api_key else None
        remote = RemoteTarget(
            config.url, config.collection, embedder, config.state_dir, api_key=api_key
        )
        try:
            yield remote
        finally:
            remote.close()
        return
    owned = engine is None
    engine = engine or Engine(config.data, background=False, embedders=registry)
    try:
        yield LocalTarget(engine, config.collection, embedder)
    finally:
        if owned:
            engine.close()


def _run(
    config: IndexJobConfig,
    plan: JobPlan,
    target: Target,
    registry: EmbedderRegistry,
    progress: JobProgress | None,
    stages: EmbedStages,
) -> JobSummary:
    key = job_key(plan.identity)
    state = target.existing()
    held = target.points()

    def saved_checkpoint(file: CheckpointFile) -> Checkpoint | None:
        """The checkpoint to go on from: none where it was written for another collection
        of this name (dropped since, maybe made again), whose points are not here. A
        remote job's checkpoint is kept apart from its collection, so this happens."""
        saved = _matching(file.load(), plan)
        if saved is None:
            return None
        uid = target.uid()
        if saved.collection_uid is not None and uid is not None and saved.collection_uid != uid:
            return None
        if saved.indexed > 0 and held == 0:  # for checkpoints that name no collection
            return None
        return saved

    saved = None
    if state is not None:
        saved = saved_checkpoint(CheckpointFile(state, key))
        if saved is not None and saved.finished and saved.kept == plan.kept:
            done = _checkpoint_fields(config, saved, CheckpointFile(state, key))
            return JobSummary(**done, indexed=0, rejected=0, already_done=True)

    # Over an input that an earlier run embedded to the end, only the kept fields changed:
    # every vector is in the collection already, and the model is not needed.
    reuse_all = saved is not None and saved.finished and saved.embedded_to >= saved.position
    started = time.perf_counter()
    embedder = None if reuse_all else registry.get(plan.embedder)
    load_s = time.perf_counter() - started
    if embedder is not None and plan.modality not in embedder.modalities:
        can = " and ".join(sorted(embedder.modalities))
        raise InvalidInput(
            f"embedder {plan.embedder!r} cannot embed {plan.modality}s; it embeds {can}s"
        )
    checkpoint_file = CheckpointFile(target.prepare(embedder.dim if embedder else None), key)
    saved = saved_checkpoint(checkpoint_file)
    if saved is None:
        checkpoint = Checkpoint(
            identity=plan.identity, fingerprint=plan.source.fingerprint(), kept=plan.kept
        )
    elif saved.kept != plan.kept:
        # Another pass over the input, for the new kept fields, reusing the vectors.
        checkpoint = Checkpoint(
            identity=plan.identity,
            fingerprint=saved.fingerprint,
            kept=plan.kept,
            embedded_to=saved.embedded_to,
        )
    else:
        checkpoint = saved
    checkpoint = checkpoint.model_copy(update={"collection_uid": target.uid()})
    writer = _Writer(target, checkpoint_file, checkpoint, progress)
    if progress is not None:
        progress.start(
            done_before=checkpoint.position,
            units_done=checkpoint.units,
            units_total=plan.source.total_units(),
        )
    started = time.perf_counter()
    try:
        start = Start(checkpoint.position, checkpoint.cursor)
        batches = partial(_batches, plan, start, checkpoint.embedded_to)
        # With every vector reused there is no model to run elsewhere: the batches only
        # pass through, here.
        run = local_stages if embedder is None else stages
        embed = _reused_only if embedder is None else embed_stage(embedder, plan.modality)
        run(EmbedWork(batches, embed, writer.write, registry, plan.embedder, plan.modality))
    finally:
        writer.close()
        if progress is not None:
            progress.finish()
    elapsed_s = time.perf_counter() - started

    final = writer.checkpoint
    if final.indexed == 0 and final.rejected > 0:
        raise JobFailed(
            f"no record of {str(config.source)!r} could be indexed: all {final.rejected:,} "
            f"were rejected (first: {_first_reason(checkpoint_file.rejects_path)}); "
            f"see {checkpoint_file.rejects_path}"
        )
    # The records embedded that did not add a point replaced one, written by an earlier
    # record of the same id or before this run (a reused vector never adds a point).
    replaced = max(0, writer.embedded - (target.count() - held)) if writer.embedded else 0
    started = time.perf_counter()
    if writer.indexed:
        target.finish()
    index_s = time.perf_counter() - started
    final = checkpoint_file.save(final.model_copy(update={"finished": True}))
    return JobSummary(
        **_checkpoint_fields(config, final, checkpoint_file),
        indexed=writer.indexed,
        embedded=writer.embedded,
        replaced=replaced,
        rejected=writer.rejected,
        resumed_from=checkpoint.position,
        elapsed_s=elapsed_s,
        load_s=load_s,
        index_s=index_s,
    )


def _matching(saved: Checkpoint | None, plan: JobPlan) -> Checkpoint | None:
    """``saved`` if it is this job's over this version of the input, else None."""
    if saved is None or saved.identity != plan.identity:
        return None
    if saved.fingerprint != plan.source.fingerprint():
        return None  # the input changed: start over (upserts replace what was written)
    return saved


def _batches(plan: JobPlan, start: Start, reuse_until: int) -> Iterator[Batch]:
    items = plan.source.read(start, plan.fields.used)
    return read_batches(
        items, plan.fields, plan.batch_size, plan.source.units_done, reuse_until=reuse_until
    )


def embed_stage(embedder: Embedder, modality: str) -> Callable[[Batch], Batch]:
    """Embed the inputs of a batch's points that are not reused; a batch whose call fails
    on bad input is embedded record by record, and the records that fail are rejected with
    the embedder's reason."""
    embed = embedder.embed_texts if modality == "text" else embedder.embed_images

    def embed_batch(batch: Batch) -> Batch:
        fresh = [i for i, reused in enumerate(batch.reused) if not reused]
        if not fresh:
            return _reused_only(batch)
        try:
            batch.vectors = embed([batch.inputs[i] for i in fresh])
        except InvalidEmbedderInput:
            # One bad input fails the whole call: embed one by one to reject only it.
            ok = [True] * len(batch.ids)
            reasons: dict[int, str] = {}
            rows: list[np.ndarray] = []
            for i in fresh:
                try:
                    rows.append(embed([batch.inputs[i]])[0])
                except InvalidEmbedderInput as exc:
                    ok[i] = False
                    reasons[i] = exc.message
            batch.keep(ok, reasons)
            batch.vectors = np.stack(rows) if rows else None
        batch.inputs = []  # decoded images can be large: let them go before the write
        return batch

    return embed_batch


def _reused_only(batch: Batch) -> Batch:
    """The embedding stage of a batch whose points are all reused: nothing to embed."""
    assert all(batch.reused), "a point to embed in a run that reuses every vector"
    batch.inputs = []
    return batch


_NOT_REUSABLE = (
    "no point with this id in the collection to keep the vector of: the run that embedded "
    "this input rejected the record, or the point was deleted since; a run that only "
    "changes the kept fields embeds nothing (touch the input to index it all again)"
)


class _Writer:
    """The writing stage: points, then rejects, then the checkpoint, batch after batch."""

    def __init__(
        self,
        target: Target,
        checkpoint_file: CheckpointFile,
        checkpoint: Checkpoint,
        progress: JobProgress | None,
    ) -> None:
        self._target = target
        self._file = checkpoint_file
        self._progress = progress
        self.checkpoint = checkpoint
        self.indexed = 0
        self.embedded = 0
        self.rejected = 0
        self._rejects: IO[bytes] | None = None
        path = checkpoint_file.rejects_path
        if checkpoint.rejects_bytes:
            # Rejects written after the checkpoint by a killed run are written again.
            os.truncate(path, checkpoint.rejects_bytes)
        else:
            path.unlink(missing_ok=True)

    def write(self, batch: Batch) -> None:
        rejects = list(batch.rejects)
        indexed = embedded = 0
        if batch.ids:
            points, vectors = self._vectors(batch, rejects)
            ids = [batch.ids[i] for i in points]
            payloads = [batch.payloads[i] for i in points]
            refused = self._target.upsert(ids, vectors, payloads) if points else []
            failed = {points[i] for i, _ in refused}
            rejects += [Reject(batch.positions[points[i]], ids[i], why) for i, why in refused]
            # Records, not points: each record of an id repeated in the batch counts.
            written = [i for i in points if i not in failed]
            indexed = sum(batch.record_counts[i] for i in written)
            embedded = sum(batch.record_counts[i] for i in written if not batch.reused[i])
        rejects_bytes = self.checkpoint.rejects_bytes
        if rejects:
            if self._rejects is None:
                self._file.rejects_path.parent.mkdir(parents=True, exist_ok=True)
                self._rejects = open(self._file.rejects_path, "ab")  # noqa: SIM115
            ordered = sorted(rejects, key=lambda reject: reject.position)
            self._rejects.write(b"".join(reject.to_json() + b"\n" for reject in ordered))
            self._rejects.flush()
            os.fsync(self._rejects.fileno())
            rejects_bytes = self._rejects.tell()
        self.indexed += indexed
        self.embedded += embedded
        self.rejected += len(rejects)
        # Only now is everything before the batch's end in the collection.
        self.checkpoint = self._file.save(
            self.checkpoint.model_copy(
                update={
                    "position": batch.end_position,
                    "cursor": batch.end_cursor,
                    "units": batch.units,
                    "indexed": self.checkpoint.indexed + indexed,
                    "rejected": self.checkpoint.rejected + len(rejects),
                    "rejects_bytes": rejects_bytes,
                    "embedded_to": max(self.checkpoint.embedded_to, batch.end_position),
                }
            )
        )
        if self._progress is not None:
            self._progress.update(
                indexed=self.indexed, rejected=self.rejected, units_done=batch.units
            )

    def _vectors(self, batch: Batch, rejects: list[Reject]) -> tuple[list[int], np.ndarray]:
        """The batch's points to write (indexes into it) and their vectors: the ones
        embedded, and the reused ones as the collection holds them. A reused point that
        is not there is rejected: the run that embedded its record rejected it, or the
        point was deleted since."""
        fresh = [i for i, reused in enumerate(batch.reused) if not reused]
        rows = dict(zip(fresh, batch.vectors if batch.vectors is not None else [], strict=True))
        reused = [i for i, reused in enumerate(batch.reused) if reused]
        if reused:
            stored = self._target.vectors([batch.ids[i] for i in reused])
            for i, vector in zip(reused, stored, strict=True):
                if vector is None:
                    rejects.append(Reject(batch.positions[i], batch.ids[i], _NOT_REUSABLE))
                else:
                    rows[i] = vector
        points = sorted(rows)
        return points, np.stack([rows[i] for i in points]) if points else np.empty((0, 0))

    def close(self) -> None:
        if self._rejects is not None:
            self._rejects.close()


def _first_reason(rejects: Path) -> str:
    try:
        with open(rejects, "rb") as f:
            first = f.readline()
    except OSError:
        return "unknown"
    entry = orjson.loads(first) if first else {}
    return f"record {entry.get('position')}: {entry.get('reason')}"


def _checkpoint_fields(
    config: IndexJobConfig, checkpoint: Checkpoint, checkpoint_file: CheckpointFile
) -> dict[str, Any]:
    """The fields of a job's summary that its checkpoint gives: what all the job's runs
    did, and where its files are."""
    return {
        "collection": config.collection,
        "source": config.source,
        "total_indexed": checkpoint.indexed,
        "total_rejected": checkpoint.rejected,
        "rejects_path": checkpoint_file.rejects_path if checkpoint.rejected else None,
        "checkpoint_path": checkpoint_file.path,
    }
