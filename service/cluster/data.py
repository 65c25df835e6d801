"""Batch indexing on Ray Data: the job of ``vecserve index``, its reading and embedding run
by Ray, its writing and checkpoints where they always are.

The job is the local one (:func:`indexer.jobs.run_index_job`): the same sources, fields,
reject file, progress and checkpoints. Only its stages differ. The input is read in a
Ray Data read task, by the same source code as a local job (its positions and rejects
are the same), batch by batch; an actor pool embeds the batches, one model loaded per
actor, each actor with a GPU of its own when the cluster has GPUs; the driver writes the
embedded batches, in input order, in large upserts, and checkpoints after each. A job
killed (the driver, or a worker: Ray runs its task again) and run again resumes from its
last checkpoint, and upserts by id leave exactly one point per id.

The input must be on storage that the node running the read task reaches (any node of a
one-machine cluster; shared storage on several).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import ray
from ray.data import DataContext
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from indexer.embedders import EmbedderConfig, EmbedderRegistry
from indexer.jobs import IndexJobConfig, JobSummary
from indexer.jobs.job import EmbedStages, EmbedWork, embed_stage, run_index_job
from indexer.jobs.progress import JobProgress
from indexer.jobs.records import Batch

__all__ = ["ray_stages", "run_index_job_on_ray"]


def run_index_job_on_ray(
    config: IndexJobConfig,
    *,
    address: str | None = None,
    actors: int | None = None,
    progress: JobProgress | None = None,
) -> JobSummary:
    """:func:`~indexer.jobs.run_index_job` with its reading and embedding on Ray Data.

    ``address``: the Ray cluster to join (``auto`` for the one this machine belongs to);
    None starts a local one for this job. ``actors``: embedding actors (default: one per
    GPU when the cluster has GPUs, else one per CPU less one, at least one).
    """
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        return run_index_job(config, progress=progress, stages=ray_stages(actors))
    finally:
        if started_here:
            ray.shutdown()


def ray_stages(actors: int | None = None) -> EmbedStages:
    """The :class:`~indexer.jobs.job.EmbedStages` of a job on the connected Ray cluster."""

    def stages(work: EmbedWork) -> None:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        pool = actors or (gpus if gpus else max(1, int(resources.get("CPU", 1)) - 1))
        context = DataContext.get_current()
        context.execution_options.preserve_order = True  # checkpoints follow input order
        dataset = ray.data.read_datasource(_Batches(work.batches), override_num_blocks=1)
        embedded = dataset.map_batches(
            _Embedder,
            fn_constructor_kwargs={
                "config": work.registry.config(work.embedder).model_dump(mode="json"),
                "modality": work.modality,
            },
            batch_size=1,  # one job batch (thousands of records) per call
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=pool),
            num_gpus=1 if gpus else 0,
            num_cpus=0 if gpus else 1,
        )
        for rows in embedded.iter_batches(batch_size=1, batch_format="numpy"):
            for blob in rows["batch"]:
                work.write(pickle.loads(blob))

    return stages


class _Batches(Datasource):  # type: ignore[misc]  # Ray is untyped here
    """A datasource of one read task: the job's batches, read by the job's own source
    code, each as one row holding the pickled batch."""

    def __init__(self, batches: Callable[[], Iterator[Batch]]) -> None:
        self._batches = batches

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        batches = self._batches

        def read() -> Iterator[pa.Table]:
            for batch in batches():
                yield pa.table({"batch": pa.array([pickle.dumps(batch)], type=pa.binary())})

        metadata = BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None)
        return [ReadTask(read, metadata)]


class _Embedder:
    """An actor of the pool: loads the model once, embeds batch after batch."""

    def __init__(self, config: dict[str, Any], modality: str) -> None:
        embedder = EmbedderConfig.model_validate(config)
        self._embed = embed_stage(EmbedderRegistry([embedder]).get(embedder.name), modality)

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
        return {"batch": [pickle.dumps(self._embed(pickle.loads(blob))) for blob in rows["batch"]]}
