"""The sync client's ways of waiting, twin of :mod:`vecserve_client._async_io`.

The clients have one source, ``_async_client.py``, from which ``scripts/unasync.py``
generates ``_client.py``. What cannot be generated, because threads and asyncio do it
differently, is here: sending batches at once, and file work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import BinaryIO, TypeVar

from vecserve_client._http import CHUNK

T = TypeVar("T")


def send_concurrently(
    send: Callable[[T], int], batches: Sequence[T], parallel: int, sent: Callable[[int], None]
) -> None:
    """Send every batch, ``parallel`` at once in threads, calling ``sent`` (in this
    thread) with what each one wrote as it completes; on the first failure, cancel the
    batches not yet started and raise it."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(send, b) for b in batches]
        try:
            for future in as_completed(futures):
                sent(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def file_chunks(path: Path) -> Iterator[bytes]:
    """A file's bytes, ``CHUNK`` at a time."""
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    for chunk in file_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def write(file: BinaryIO, chunk: bytes) -> None:
    """Write ``chunk`` to ``file``."""
    file.write(chunk)
