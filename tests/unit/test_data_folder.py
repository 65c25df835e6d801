"""One engine to a data folder at a time: a second one, here or in another process, is
refused with DataFolderInUse rather than left to miss the first one's writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from indexer import DataFolderInUse, Engine

HOLD = """
import sys, time
from indexer import Engine
engine = Engine(sys.argv[1], background=False)
print("open", flush=True)
time.sleep(60)
"""


def test_a_second_engine_on_the_folder_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    first = Engine(tmp_path, background=False)
    first.create_collection("a", dim=2).upsert([1], np.ones((1, 2)))
    with pytest.raises(DataFolderInUse, match=str(os.getpid())):
        Engine(tmp_path, background=False)
    assert first.get_collection("a").count() == 1  # the refused one took nothing away
    first.close()
    first.close()  # closing twice lets go once
    with Engine(tmp_path, background=False) as second:
        assert second.get_collection("a").count() == 1
    with Engine(tmp_path / "other", background=False):  # another folder is another lock
        pass


def test_a_folder_held_by_another_process_is_refused_and_freed_when_it_dies(
    tmp_path: Path,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(DataFolderInUse, match=f"process {holder.pid}"):
            Engine(tmp_path, background=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert holder.stdout is not None
        holder.stdout.close()
    deadline = time.monotonic() + 10
    while True:  # the kernel drops a dead process's lock
        try:
            Engine(tmp_path, background=False).close()
            break
        except DataFolderInUse:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_an_engine_left_open_lets_go_when_collected(tmp_path: Path) -> None:
    Engine(tmp_path, background=False)  # never closed: dropped at once
    with Engine(tmp_path, background=False):
        pass


def test_the_cli_says_so_instead_of_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.cli import main

    (tmp_path / "docs.jsonl").write_text('{"id": 1, "text": "a"}\n')
    with Engine(tmp_path / "data", background=False):
        assert main(["serve", "--data", str(tmp_path / "data"), "--port", "9"]) == 1
        assert "is open in another engine" in capsys.readouterr().err
        args = [
            "index",
            str(tmp_path / "docs.jsonl"),
            "--collection",
            "docs",
            "--text-field",
            "text",
        ]
        assert main([*args, "--data", str(tmp_path / "data")]) == 1
        err = capsys.readouterr().err
        assert "is open in another engine" in err
        assert "--url" in err
