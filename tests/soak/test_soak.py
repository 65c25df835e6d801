from __future__ import annotations

import json
from pathlib import Path

from bench import soak


def test_two_minutes_of_mixed_load_leave_no_errors_and_no_growth(tmp_path: Path) -> None:
    status = soak.main(["--minutes", "2", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "soak.json").read_text())
    assert status == 0, report["problems"]
    assert report["server_errors"] == 0
    assert report["requests"] > 1_000
    assert (tmp_path / "soak.md").read_text().startswith("# Soak")
