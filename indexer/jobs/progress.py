"""Showing a job's progress: a live line on a terminal, periodic log lines elsewhere."""

from __future__ import annotations

import time
from typing import Protocol, TextIO

__all__ = ["JobProgress", "ProgressLine"]


class JobProgress(Protocol):
    """What a job tells about its progress."""

    def start(self, *, done_before: int, units_done: int, units_total: int | None) -> None:
        """The job begins; ``done_before`` records were done by earlier runs."""
        ...

    def update(self, *, indexed: int, rejected: int, units_done: int) -> None:
        """Totals of this run after a batch was committed."""
        ...

    def finish(self) -> None:
        """The job ended (or failed); the display is closed."""
        ...


class ProgressLine:
    """Count, rate and ETA on ``stream``: one line redrawn in place on a terminal
    (at most ``redraw_s`` apart), else a plain line every ``log_every_s`` seconds.

    The ETA comes from the progress units (bytes, rows, files) done per second, so it
    holds for inputs whose record count is unknown until the end.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        interactive: bool | None = None,
        log_every_s: float = 10.0,
        redraw_s: float = 0.2,
    ) -> None:
        self._stream = stream
        self._interactive = stream.isatty() if interactive is None else interactive
        self._every = redraw_s if self._interactive else log_every_s
        self._started = time.monotonic()
        self._last_shown = self._started
        self._units_start = 0
        self._units_total: int | None = None
        self._done_before = 0
        self._drawn = False
        self._state = (0, 0, 0)

    def start(self, *, done_before: int, units_done: int, units_total: int | None) -> None:
        self._started = self._last_shown = time.monotonic()
        self._done_before = done_before
        self._units_start = units_done
        self._units_total = units_total
        if done_before:
            self._print(f"resuming after {done_before:,} records done by an earlier run")

    def update(self, *, indexed: int, rejected: int, units_done: int) -> None:
        self._state = (indexed, rejected, units_done)
        now = time.monotonic()
        if now - self._last_shown >= self._every:
            self._last_shown = now
            self._show(now)

    def finish(self) -> None:
        if self._interactive and self._drawn:
            self._show(time.monotonic())
            self._stream.write("\n")
            self._stream.flush()

    def _show(self, now: float) -> None:
        indexed, rejected, units_done = self._state
        elapsed = max(now - self._started, 1e-9)
        parts = [f"{indexed:,} indexed", f"{rejected:,} rejected"]
        if self._units_total:
            parts.append(f"{100 * units_done / self._units_total:.0f}%")
        parts.append(f"{(indexed + rejected) / elapsed:,.0f} records/s")
        unit_rate = (units_done - self._units_start) / elapsed
        if self._units_total and unit_rate > 0:
            parts.append(f"ETA {_clock((self._units_total - units_done) / unit_rate)}")
        line = ", ".join(parts)
        if self._interactive:
            self._stream.write(f"\r\x1b[K{line}")
            self._drawn = True
            self._stream.flush()
        else:
            self._print(line)

    def _print(self, line: str) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._drawn = False
        self._stream.write(line + "\n")
        self._stream.flush()


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
