"""The SDK's type hints accept what its methods take at runtime: code that calls it with
numpy arrays passes ``mypy --strict``, as a user's project would check it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"

USER_CODE = textwrap.dedent(
    """
    import numpy as np
    import numpy.typing as npt

    from vecserve_client import AsyncClient, Client, Hit, Ids, Point


    def calls(client: Client, vectors: npt.NDArray[np.float32]) -> list[Point]:
        ids = np.arange(len(vectors))
        client.upsert("a", ids, vectors, payloads=[{"n": np.int64(1)}] * len(vectors))
        client.upsert("a", ["a", 7], vectors[:2].tolist())
        hits: list[list[Hit]] = client.search_batch("a", ids=ids[:2])
        client.delete("a", ids[:1])
        client.get_point("a", 7)
        return client.get("a", ids)


    async def async_calls(client: AsyncClient, ids: Ids, vectors: npt.NDArray[np.float64]) -> None:
        await client.upsert("a", ids, vectors)
        await client.get("a", ids)
        await client.delete("a", ids)
        await client.search_batch("a", ids=ids)
        await client.get_point("a", "7", with_vectors=True)
    """
)


@pytest.mark.slow
def test_numpy_ids_and_vectors_type_check_under_mypy_strict(tmp_path: Path) -> None:
    (tmp_path / "user.py").write_text(USER_CODE)
    # The SDK is installed in development mode, which mypy cannot follow: point it there.
    (tmp_path / "mypy.ini").write_text(f"[mypy]\nstrict = True\nmypy_path = {CLIENT}\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "user.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
