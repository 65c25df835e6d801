"""What a job is asked to do (indexer/jobs/config.py), as ``vecserve index`` takes it:
arguments that make no job exit 2 with a clear message before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from service.cli import main
from tests.unit.jobs.running import rows, write_jsonl


@pytest.fixture
def in_a_folder_with_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test runs in ``tmp_path``, which holds ``docs.jsonl`` (three records)."""
    write_jsonl(tmp_path / "docs.jsonl", rows(3))
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl", "--text-field", "title"], "does not exist"),
        (["docs.txt", "--text-field", "title"], "cannot tell the format"),
        (["docs.jsonl", "--text-field", "titel"], "--text-field 'titel' is not among"),
        (["docs.jsonl", "--text-field", "title", "--id-field", "key"], "--id-field 'key'"),
        (["docs.jsonl", "--text-field", "title", "--embedder", "gpt-9"], "no embedder named"),
        (["docs.jsonl", "--text-field", "title", "--embedder", "/tmp/model"], "no embedder"),
        (["docs.jsonl"], "give --text-field"),
        (["docs.jsonl", "--text-field", "t", "--image-field", "p"], "not both"),
        (["docs.jsonl", "--text-field", "title", "--batch-size", "0"], "--batch-size"),
        (["docs.jsonl", "--text-field", "title", "--label-from-folder"], "image folders only"),
        (["docs.csv", "--text-field", "title", "--payload-fields", "x"], "--payload-fields 'x'"),
        (["photos", "--text-field", "title"], "does not apply to an image folder"),
    ],
)
@pytest.mark.usefixtures("in_a_folder_with_docs")
def test_bad_arguments_exit_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "docs.txt").write_text("id,title\n1,x\n")
    (tmp_path / "docs.csv").write_text("id,title\n1,x\n")
    (tmp_path / "photos").mkdir()
    assert main(["index", *args, "--collection", "docs", "--data", "data"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vecserve index: error: ")
    assert message in err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "d", "--url", "http://127.0.0.1:1"], "not allowed with argument"),
        (["--api-key", "k" * 20], "--api-key goes with --url"),
        (["--url", "127.0.0.1:8000"], "is not a service URL like http://127.0.0.1:8000"),
    ],
)
@pytest.mark.usefixtures("in_a_folder_with_docs")
def test_a_job_goes_to_a_data_folder_or_to_a_url_with_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    try:
        code = main(["index", "docs.jsonl", "--collection", "docs", "--text-field", "title", *args])
    except SystemExit as exit:  # argparse's own errors
        code = int(exit.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["docs.jsonl"]
