"""Background work of a collection: one daemon thread at a time, none once stopped.

Index maintenance, full-text backlog indexing and payload index backfill each own one
:class:`BackgroundWork` (the last two as :class:`BatchedWork`, done a batch at a time).
Its lock only orders starting a thread against stopping; the work itself takes the
collection's locks through the facade, as any caller does.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

log = logging.getLogger(__name__)


class BackgroundWork:
    """Runs ``work`` in a thread named ``name`` on :meth:`start`, unless it runs already;
    a failure is logged as ``failure`` (the thread is only ever a background helper).

    With ``more``, the thread asks it, once the work returns, whether work came in
    meanwhile, and runs the work again if so: a :meth:`start` that found the thread
    finishing is not lost. It is asked under the lock that orders starts, so it must not
    wait for anything that a caller of :meth:`start` may hold.
    """

    def __init__(
        self,
        name: str,
        work: Callable[[], None],
        failure: str,
        *,
        more: Callable[[], bool] | None = None,
    ) -> None:
        self._name = name
        self._work = work
        self._failure = failure
        self._more = more
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running = False
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
            if self._stopping or self._running:
                return
            self._running = True
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
            while True:
                self._work()
                with self._lock:
                    if self._stopping or self._more is None or not self._more():
                        self._running = False
                        return
        except Exception:
            log.exception("%s", self._failure)
        finally:
            with self._lock:  # unless it ended above, and another thread started since
                if self._thread is threading.current_thread():
                    self._running = False


class BatchedWork(ABC):
    """Work done a batch at a time by :meth:`step`: in a background thread (:meth:`start`;
    one at a time, none once stopped, a stop waits for the batch under way) or all of it
    now in the caller's thread (:meth:`run_now`)."""

    def __init__(self, name: str, failure: str, *, more: Callable[[], bool] | None = None) -> None:
        self._work = BackgroundWork(name, self._run, failure, more=more)

    @abstractmethod
    def step(self) -> bool:
        """Do one batch; whether work remains."""

    def start(self) -> None:
        self._work.start()

    def run_now(self) -> None:
        while self.step():
            pass

    def stop(self) -> None:
        self._work.stop()

    def _run(self) -> None:
        while not self._work.stopping and self.step():
            pass
