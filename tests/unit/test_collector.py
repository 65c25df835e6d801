"""The garbage collector is paused while a search builds many objects, and only then."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from indexer import collector
from indexer.collector import PAUSE_FROM, collector_paused


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_a_large_build_pauses_the_collector_until_it_ends() -> None:
    gc.enable()
    with collector_paused(PAUSE_FROM):
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_small_build_leaves_the_collector_running() -> None:
    gc.enable()
    with collector_paused(PAUSE_FROM - 1):
        assert gc.isenabled()


def test_overlapping_builds_share_one_pause_that_ends_with_the_last() -> None:
    gc.enable()
    first = collector_paused(PAUSE_FROM)
    second = collector_paused(PAUSE_FROM)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second build still runs
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    with collector_paused(PAUSE_FROM):
        pass
    assert not gc.isenabled()


def test_a_failed_build_resumes_the_collector() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused(PAUSE_FROM):
        raise RuntimeError("the build failed")
    assert gc.isenabled()


class _Node:
    """An object in a reference cycle: only the collector frees it."""

    def __init__(self) -> None:
        self.itself = self


def test_builds_that_keep_overlapping_still_let_the_collector_free_cycles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collector, "MAX_PAUSE_S", 0.0)  # every shared pause has lasted long
    gc.enable()
    held = collector_paused(PAUSE_FROM)
    held.__enter__()  # one build or another always runs: the pause is never ended
    try:
        garbage = weakref.ref(_Node())
        with collector_paused(PAUSE_FROM):
            assert garbage() is not None
        assert garbage() is None
    finally:
        held.__exit__(None, None, None)
    assert gc.isenabled()
