"""A real headless Chromium, driven by Selenium through the system's chromedriver, against
a real ``vecserve`` under uvicorn on 127.0.0.1.

Chromium and chromedriver are the Debian packages (``scripts/check`` installs them);
Selenium is given the driver's path, so it never looks for (or downloads) one itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.support.server import Server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
API_KEY = "browser-test-key-0123456789"
READ_ONLY_KEY = "browser-test-read-only-key-0123"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    skip = pytest.mark.skip(reason="needs the chromium and chromium-driver packages")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with API keys on for every browser test: each test names its own
    collections."""
    env = {"VECSERVE_API_KEYS": API_KEY, "VECSERVE_READ_ONLY_API_KEYS": READ_ONLY_KEY}
    with Server(tmp_path_factory.mktemp("browser") / "data", env=env) as s:
        yield s


@pytest.fixture(scope="package")
def browser() -> Iterator[webdriver.Chrome]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never go looking for a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--window-size=1440,960",
        "--force-device-scale-factor=1",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where a test saves its screenshots."""
    return tmp_path


def save_screenshot(
    driver: webdriver.Chrome, folder: Path, name: str, *, for_docs: bool = False
) -> Path:
    """The page as a PNG in ``folder``; with ``VECSERVE_DOCS_SCREENSHOTS=DIR`` set, one
    marked ``for_docs`` is copied there too (``docs/``, for the README's picture)."""
    path = folder / name
    assert driver.save_screenshot(str(path)), f"no screenshot saved to {path}"
    copy_to = os.environ.get("VECSERVE_DOCS_SCREENSHOTS")
    if copy_to and for_docs:
        shutil.copy(path, Path(copy_to) / name)
    return path
