"""The soak benchmark (bench/soak.py), run for two minutes: the CI's check that mixed load
leaves no server error and no growth. It runs as a command, as a user runs it, so that
no test imports the benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_two_minutes_of_mixed_load_leave_no_errors_and_no_growth(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "2", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads((tmp_path / "soak.json").read_text())
    assert run.returncode == 0, (report["problems"], run.stderr[-2000:])
    assert report["server_errors"] == 0
    assert report["requests"] > 1_000
    assert (tmp_path / "soak.md").read_text().startswith("# Soak")
