"""Background work on its own: plain callables in real threads."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from indexer.collection.background import BackgroundWork, BatchedWork


def test_one_thread_at_a_time_runs_the_work() -> None:
    release, runs = threading.Event(), []

    def run() -> None:
        runs.append(1)
        release.wait(10)

    work = BackgroundWork("t", run, "failed")
    work.start()
    first = work.thread
    work.start()  # runs already: no second thread
    assert work.thread is first
    release.set()
    work.stop()
    assert runs == [1]


def test_stop_waits_for_the_running_work_and_starts_no_more() -> None:
    work = BackgroundWork("t", lambda: time.sleep(0.1), "failed")
    work.start()
    thread = work.thread
    work.stop()
    assert thread is not None
    assert not thread.is_alive()
    work.start()
    assert work.thread is thread
    assert work.stopping


def test_a_failure_is_logged_and_a_later_start_runs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []

    def fail() -> None:
        runs.append(1)
        raise RuntimeError("boom")

    work = BackgroundWork("t", fail, "collection c: the work failed")
    with caplog.at_level(logging.ERROR):
        for _ in range(2):
            work.start()
            assert work.thread is not None
            work.thread.join(10)
    assert runs == [1, 1]
    assert caplog.messages == ["collection c: the work failed"] * 2


def test_work_that_came_in_as_the_thread_finished_is_done_by_it() -> None:
    pending = [True]  # work arrived while the first run finished
    runs: list[int] = []

    def more() -> bool:
        was = pending[0]
        pending[0] = False
        return was

    work = BackgroundWork("t", lambda: runs.append(1), "failed", more=more)
    work.start()
    assert work.thread is not None
    work.thread.join(10)
    assert runs == [1, 1]
    work.start()  # the thread ended: a start runs the work again
    work.stop()
    assert runs == [1, 1, 1]


class Countdown(BatchedWork):
    """``batches`` batches of work, each waiting for ``gate`` when one is given."""

    def __init__(self, batches: int, gate: threading.Event | None = None) -> None:
        super().__init__("t", "failed")
        self.left = batches
        self._gate = gate

    def step(self) -> bool:
        if self._gate is not None:
            self._gate.wait(10)
        self.left -= 1
        return self.left > 0


def test_batched_work_run_now_does_every_batch_in_the_callers_thread() -> None:
    work = Countdown(5)
    work.run_now()
    assert work.left == 0


def test_batched_work_stopped_in_the_background_ends_after_the_batch_under_way() -> None:
    gate = threading.Event()
    work = Countdown(1_000, gate)
    work.start()
    stopper = threading.Thread(target=work.stop)
    stopper.start()
    while not work._work.stopping:  # the first batch waits for the gate meanwhile
        time.sleep(0.001)
    gate.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert work.left > 0  # stopped between batches, not run to the end
