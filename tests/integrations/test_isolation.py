"""The adapters live in the SDK's distribution and talk HTTP only."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_adapters_imports_nothing_of_the_server() -> None:
    code = (
        "import sys\n"
        "import vecserve_client.integrations.langchain\n"
        "import vecserve_client.integrations.llamaindex\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'indexer', 'service', 'faiss', 'torch', 'fastapi', 'sentence_transformers'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
