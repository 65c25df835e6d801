"""The adapters live in the SDK's distribution and talk HTTP only."""

from __future__ import annotations

from tests.support.isolation import import_in_fresh_process


def test_importing_the_adapters_imports_nothing_of_the_server() -> None:
    result = import_in_fresh_process(
        ["vecserve_client.integrations.langchain", "vecserve_client.integrations.llamaindex"],
        ["indexer", "service", "faiss", "torch", "fastapi", "sentence_transformers"],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
