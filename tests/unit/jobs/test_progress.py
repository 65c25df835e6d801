"""A job's progress line (indexer/jobs/progress.py): count, rate and ETA, on a terminal
and in a log."""

from __future__ import annotations

import io

from indexer.jobs import ProgressLine


def test_progress_lines_show_count_rate_and_eta() -> None:
    plain = io.StringIO()
    progress = ProgressLine(plain, interactive=False, log_every_s=0)
    progress.start(done_before=500, units_done=50, units_total=200)
    progress.update(indexed=90, rejected=10, units_done=100)
    progress.finish()
    first, line = plain.getvalue().splitlines()
    assert first == "resuming after 500 records done by an earlier run"
    assert line.startswith("90 indexed, 10 rejected, 50%, ")
    assert "records/s, ETA 0:00:0" in line
    terminal = io.StringIO()
    progress = ProgressLine(terminal, interactive=True, redraw_s=0)
    progress.start(done_before=0, units_done=0, units_total=None)
    progress.update(indexed=3, rejected=0, units_done=3)
    progress.finish()
    assert terminal.getvalue().startswith("\r\x1b[K3 indexed, 0 rejected, ")
    assert terminal.getvalue().endswith("\n")
