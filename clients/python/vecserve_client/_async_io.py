"""The async client's ways of waiting, twin of :mod:`vecserve_client._sync_io`: batches
sent as tasks, and file work done in a worker thread so that the event loop never waits
on disk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import BinaryIO, TypeVar

from vecserve_client import _sync_io
from vecserve_client._http import CHUNK

T = TypeVar("T")


async def send_concurrently(
    send: Callable[[T], Awaitable[int]],
    batches: Sequence[T],
    parallel: int,
    sent: Callable[[int], None],
) -> None:
    """Send every batch, ``parallel`` at once as tasks, calling ``sent`` with what each
    one wrote as it completes; on the first failure, cancel the others and raise it."""
    slots = asyncio.Semaphore(parallel)

    async def one(batch: T) -> None:
        async with slots:
            written = await send(batch)
        sent(written)

    tasks = [asyncio.ensure_future(one(b)) for b in batches]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A file's bytes, ``CHUNK`` at a time."""
    with open(path, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk


async def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    return await asyncio.to_thread(_sync_io.file_sha256, path)


async def write(file: BinaryIO, chunk: bytes) -> None:
    """Write ``chunk`` to ``file``, in a worker thread."""
    await asyncio.to_thread(file.write, chunk)
