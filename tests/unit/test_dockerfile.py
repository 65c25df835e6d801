"""The Dockerfile (which CI cannot build: no Docker engine here) parses, follows the rules
of the image, and installs what the README says with the project's GPU extra."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def instructions() -> list[dict[str, str]]:
    with (ROOT / "Dockerfile").open("rb") as f:
        parsed: list[dict[str, str]] = DockerfileParser(fileobj=f).structure
    assert parsed, "the Dockerfile parses to no instructions"
    return parsed


def values(instructions: list[dict[str, str]], name: str) -> list[str]:
    return [i["value"] for i in instructions if i["instruction"] == name]


def test_image_is_a_cuda_runtime_with_a_non_root_user(instructions: list[dict[str, str]]) -> None:
    (base,) = values(instructions, "FROM")
    assert re.match(r"nvidia/cuda:12\.[\d.]+-(cudnn-)?runtime-", base)
    users = values(instructions, "USER")
    assert users
    assert users[-1] not in ("root", "0")
    assert values(instructions, "VOLUME") == ['["/data"]']
    assert values(instructions, "EXPOSE") == ["8000"]


def test_healthcheck_asks_readyz_and_cmd_serves_on_all_interfaces(
    instructions: list[dict[str, str]],
) -> None:
    (health,) = values(instructions, "HEALTHCHECK")
    assert "/readyz" in health
    (cmd,) = values(instructions, "CMD")
    assert cmd.startswith('["vecserve", "serve", "--host", "0.0.0.0"')


def test_install_steps_are_the_readmes(instructions: list[dict[str, str]]) -> None:
    installs = [v for v in values(instructions, "RUN") if v.startswith("pip install")]
    assert installs == ["pip install torch==2.13.0", 'pip install ".[gpu,embed]"']
    readme = (ROOT / "README.md").read_text()
    for command in installs:
        assert f"\n{command}\n" in readme, f"README lacks the Dockerfile's `{command}`"


def test_image_installs_the_gpu_extra_and_no_cpu_faiss(instructions: list[dict[str, str]]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    (install,) = [v for v in values(instructions, "RUN") if ".[" in v]
    (target,) = [w for w in shlex.split(install) if w.startswith(".[")]
    chosen = target[2:-1].split(",")
    assert "gpu" in chosen
    assert "cpu" not in chosen
    packages = {re.split(r"[<>=\[ ;]", req)[0] for name in chosen for req in extras[name]}
    assert "faiss-gpu" in packages
    assert "faiss-cpu" not in packages
    copied = " ".join(values(instructions, "COPY"))
    for package in ("indexer", "service", "pyproject.toml"):
        assert package in copied
