"""Reading, embedding and writing, overlapped so that the model never waits for input.

::

    reader thread --(bounded queue)--> embed (calling thread) --(bounded queue)--> writer thread

The reader parses records (and decodes images) while the model embeds the previous batch
and the writer commits the one before it. The queues are short, so memory holds a few
batches whatever the size of the input. The model runs in the calling thread, which is
the thread that receives Ctrl-C.

Stopping: when the input ends, the embedder fails or the caller is interrupted, the batches
already embedded are still written (their progress is kept) and the error is raised after.
When the writer fails, every stage stops at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["run_pipeline"]

T = TypeVar("T")

_END = object()
_POLL_S = 0.1


def run_pipeline(
    batches: Iterator[T],
    embed: Callable[[T], T],
    write: Callable[[T], None],
    *,
    depth: int = 2,
) -> None:
    """Feed ``batches`` through ``embed`` (in this thread) and ``write`` (in a writer
    thread), in order, with at most ``depth`` batches waiting between two stages.

    Raises:
        Whatever a stage raised, after the batches already embedded were written (unless
        the writer itself failed).
    """
    to_embed: queue.Queue[Any] = queue.Queue(maxsize=depth)
    to_write: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop_reading = threading.Event()
    abort = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for batch in batches:
                if not _put(to_embed, batch, stop_reading, abort):
                    return
        except BaseException as exc:
            errors.append(exc)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
            _put(to_embed, _END, stop_reading, abort)

    def write_all() -> None:
        try:
            while (batch := _get(to_write, abort)) is not _END:
                write(batch)
        except BaseException as exc:
            errors.append(exc)
            abort.set()

    reader = threading.Thread(target=read, name="vecserve-job-reader", daemon=True)
    writer = threading.Thread(target=write_all, name="vecserve-job-writer", daemon=True)
    reader.start()
    writer.start()
    try:
        while (batch := _get(to_embed, abort)) is not _END:
            if not _put(to_write, embed(batch), abort):
                break
    except BaseException as exc:
        errors.insert(0, exc)  # the embedder's error (or Ctrl-C) is the one to report
    finally:
        stop_reading.set()
        _put(to_write, _END, abort)
        writer.join()
        reader.join()
    if errors:
        raise errors[0]


def _put(target: queue.Queue[Any], item: object, *stops: threading.Event) -> bool:
    """Put ``item``, waiting for room; False (and nothing put) once a stop is set."""
    while not any(stop.is_set() for stop in stops):
        try:
            target.put(item, timeout=_POLL_S)
        except queue.Full:
            continue
        return True
    return False


def _get(source: queue.Queue[Any], abort: threading.Event) -> Any:
    """The next item, or the end marker once ``abort`` is set."""
    while not abort.is_set():
        try:
            return source.get(timeout=_POLL_S)
        except queue.Empty:
            continue
    return _END
