"""Background work of a collection: one daemon thread at a time, none once stopped.

Index maintenance and full-text backlog indexing each own one :class:`BackgroundWork`.
Its lock only orders starting a thread against stopping; the work itself takes the
collection's locks through the facade, as any caller does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class BackgroundWork:
    """Runs ``work`` in a thread named ``name`` on :meth:`start`, unless it runs already;
    a failure is logged as ``failure`` (the thread is only ever a background helper)."""

    def __init__(self, name: str, work: Callable[[], None], failure: str) -> None:
        self._name = name
        self._work = work
        self._failure = failure
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def thread(self) -> threading.Thread | None:
        """The thread started last, or None."""
        return self._thread

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called: long work checks it between steps."""
        return self._stopping

    def start(self) -> None:
        """Start the work in a thread, unless it runs already or the work was stopped."""
        with self._lock:
            if self._stopping or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Start no more threads, and wait for the one running."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        try:
            self._work()
        except Exception:
            log.exception("%s", self._failure)
