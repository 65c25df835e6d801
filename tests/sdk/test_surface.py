"""The SDK's public surface: exports, sync/async parity, docstrings, isolation."""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Callable
from typing import Any

import pytest

import vecserve_client
from tests.support.isolation import import_in_fresh_process
from vecserve_client import AsyncClient, Client
from vecserve_client import _exceptions as exceptions
from vecserve_client import _models as models
from vecserve_client._transport import RETRIED


def public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def without_async(text: str) -> str:
    """The async docstring reads as the sync one once ``await`` and ``async`` go."""
    return re.sub(r"\b(await|async) ", "", text)


def test_all_is_sorted_and_names_every_public_name() -> None:
    assert vecserve_client.__all__ == sorted(vecserve_client.__all__)
    # Subpackages (integrations) become attributes once imported; they are not exports.
    public = {
        n
        for n, value in vars(vecserve_client).items()
        if not n.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public.discard("annotations")
    assert public == set(vecserve_client.__all__) - {"__version__"}
    for module in (exceptions, models):
        for cls_name, cls in vars(module).items():
            defined_here = isinstance(cls, type) and cls.__module__ == module.__name__
            if defined_here and not cls_name.startswith("_"):
                assert cls_name in vecserve_client.__all__, cls_name


def test_sync_and_async_clients_have_the_same_methods() -> None:
    assert public_methods(Client).keys() == public_methods(AsyncClient).keys()


@pytest.mark.parametrize("method", sorted(public_methods(Client)))
def test_async_method_matches_sync_but_for_async(method: str) -> None:
    sync = getattr(Client, method)
    async_ = getattr(AsyncClient, method)
    assert inspect.iscoroutinefunction(async_) or inspect.isasyncgenfunction(async_)
    assert not inspect.iscoroutinefunction(sync)
    assert not inspect.isasyncgenfunction(sync)
    sync_sig, async_sig = inspect.signature(sync), inspect.signature(async_)
    assert list(sync_sig.parameters.values()) == list(async_sig.parameters.values())
    returns = str(async_sig.return_annotation).replace("AsyncIterator[", "Iterator[")
    assert str(sync_sig.return_annotation) == returns
    assert sync.__doc__
    assert without_async(async_.__doc__ or "") == sync.__doc__


def test_constructors_match_but_for_the_transport_type() -> None:
    sync = inspect.signature(Client.__init__)
    async_ = str(inspect.signature(AsyncClient.__init__))
    assert str(sync) == async_.replace("httpx.AsyncBaseTransport", "httpx.BaseTransport")


@pytest.mark.parametrize("method", sorted(public_methods(Client)))
def test_every_public_method_documents_args_returns_raises_and_an_example(method: str) -> None:
    doc = inspect.getdoc(getattr(Client, method)) or ""
    parameters = [p for p in inspect.signature(getattr(Client, method)).parameters if p != "self"]
    sections = ["Returns:", "Raises:", "Example:"] + (["Args:"] if parameters else [])
    for section in sections:
        assert f"\n{section}\n" in doc, f"{method} lacks {section}"
    for parameter in parameters:
        assert f"\n    {parameter}: " in doc, f"{method} does not describe {parameter}"


def test_every_method_that_sends_is_in_the_retry_table() -> None:
    methods = set(public_methods(Client)) - {"close", "delete"}
    assert set(RETRIED) == methods | {"delete_by_ids", "delete_by_filter"}


def test_importing_the_sdk_imports_nothing_of_the_server() -> None:
    result = import_in_fresh_process(
        ["vecserve_client"], ["indexer", "service", "faiss", "torch", "fastapi", "PIL"]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
