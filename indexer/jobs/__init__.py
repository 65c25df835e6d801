"""Batch indexing jobs: read a file or a folder of images, embed, upsert, resume.

>>> from indexer.jobs import IndexJobConfig, run_index_job
>>> summary = run_index_job(
...     IndexJobConfig(source="docs.jsonl", collection="docs", text_field="title")
... )

A job reads JSONL, CSV, Parquet or a folder of images as a stream, embeds batches while
the next one is read and the last one written, checkpoints after every committed batch
(so a killed job resumes where it stopped), and writes the records it cannot index to a
reject file with the reason.
"""

from indexer.jobs.config import IndexJobConfig, JobSummary
from indexer.jobs.job import run_index_job
from indexer.jobs.progress import JobProgress, ProgressLine

__all__ = ["IndexJobConfig", "JobProgress", "JobSummary", "ProgressLine", "run_index_job"]
