"""The SDK installs on its own: a clean virtual environment with only
``pip install clients/python`` searches a running server, and has neither FAISS nor
torch nor the server's packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.server import Server

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"

SCRIPT = textwrap.dedent(
    """
    import importlib.metadata, sys
    import numpy as np
    from vecserve_client import Client

    for module in ("faiss", "torch", "indexer", "service", "fastapi"):
        try:
            __import__(module)
        except ImportError:
            pass
        else:
            sys.exit(f"{module} is importable in the SDK's environment")
    requires = sorted(
        r.split(">")[0]
        for r in importlib.metadata.requires("vecserve-client")
        if "extra ==" not in r  # the integrations' extras are not installed
    )
    assert requires == ["httpx", "numpy", "pydantic"], requires

    with Client(sys.argv[1]) as client:
        client.create_collection("fresh", 3, metric="l2")
        client.upsert("fresh", ["x", "y"], np.array([[0, 0, 0], [1, 1, 1]], dtype=np.float32))
        hits = client.search("fresh", [0.9, 0.9, 0.9], k=1)
        print(hits[0].id, hits[0].score)
    """
)


@pytest.mark.slow
def test_a_clean_environment_installs_the_sdk_alone_and_searches(
    tmp_path: Path, uvicorn_server: Server
) -> None:
    # Build from a copy, so that the build leaves nothing in the working tree.
    source = tmp_path / "client"
    shutil.copytree(
        CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert install.returncode == 0, install.stderr
    # Run outside the repository, so that nothing of the server is on the path.
    run = subprocess.run(
        [python, "-c", SCRIPT, uvicorn_server.url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    hit_id, score = run.stdout.split()
    assert hit_id == "y"
    assert float(score) == pytest.approx(0.1 * 3**0.5, rel=1e-5)
