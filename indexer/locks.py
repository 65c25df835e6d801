"""A readers-writer lock: searches share the index, a write applies to it alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadWriteLock:
    """Many readers or one writer, taking turns. A stream of searches cannot starve a
    write: once a writer waits, new readers queue behind it. Nor can a writer that takes
    the lock again and again (an index filled a chunk at a time) starve the searches: the
    readers waiting when a writer lets go all get in before the next writer."""

    def __init__(self) -> None:
        # The condition's own lock, taken directly where no one waits: entering a plain
        # lock is a C call, entering the condition a Python one (every search takes it).
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._readers_waiting = 0
        self._readers_turn = False  # the waiting readers go before any waiting writer
        self._read = _ReadSide(self)

    def read(self) -> _ReadSide:
        """``with lock.read():`` holds the lock shared (a plain object, not a generator:
        every search takes it, and a generator-based context manager costs several µs)."""
        return self._read

    @property
    def readers_wait(self) -> bool:
        """Whether a reader arriving now would wait for a writer (a hint: it may change
        the next moment)."""
        return self._writer or bool(self._writers_waiting)

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._mutex:
            self._writers_waiting += 1
            while self._writer or self._readers or self._readers_turn:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._mutex:
                self._writer = False
                self._readers_turn = self._readers_waiting > 0
                self._cond.notify_all()


class _ReadSide:
    """The shared side of a :class:`ReadWriteLock`, as a context manager; it keeps no state
    of its own, so one instance serves every thread."""

    __slots__ = ("_lock",)

    def __init__(self, lock: ReadWriteLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        lock = self._lock
        with lock._mutex:
            if lock._writer or (lock._writers_waiting and not lock._readers_turn):
                lock._readers_waiting += 1
                while lock._writer or (lock._writers_waiting and not lock._readers_turn):
                    lock._cond.wait()
                lock._readers_waiting -= 1
                if not lock._readers_waiting and lock._readers_turn:
                    lock._readers_turn = False  # the writers' turn
                    lock._cond.notify_all()
            lock._readers += 1

    def __exit__(self, *exc: object) -> None:
        lock = self._lock
        with lock._mutex:
            lock._readers -= 1
            # Only a writer waits for the readers to leave (readers wait for writers).
            if not lock._readers and lock._writers_waiting:
                lock._cond.notify_all()
