"""Background work on its own: plain callables in real threads."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from indexer.collection.background import BackgroundWork


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
