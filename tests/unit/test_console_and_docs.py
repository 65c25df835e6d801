"""The console's files and the API's documentation pages are served by the app itself,
open without a key, and ask no other host for anything."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

import service.console
from service.app import create_app
from service.console import CONTENT_SECURITY_POLICY
from service.settings import Settings

KEY = "unit-test-key-0123456789"
# The URLs an HTML page loads or links to: src=, href=, spec-url= (ReDoc), and url: in an
# inline script (Swagger UI).
_URLS = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    """An app with auth on, whose lifespan is not run: these routes need no engine."""
    settings = Settings(data_dir=tmp_path, device="cpu", api_keys=[SecretStr(KEY)])
    return TestClient(create_app(settings))


def urls_in(html: str) -> list[str]:
    return [a or b for a, b in _URLS.findall(html)]


def test_the_console_page_is_public_and_forbids_loading_from_other_hosts(
    client: TestClient,
) -> None:
    page = client.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "set-cookie" not in page.headers
    urls = urls_in(page.text)
    assert {"/console/app.js", "/console/style.css", "/console/favicon.svg"} <= set(urls)
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls


@pytest.mark.parametrize(
    ("asset", "media_type"),
    [("app.js", "text/javascript"), ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")],
)
def test_each_console_file_is_served_with_its_type_and_policy(
    client: TestClient, asset: str, media_type: str
) -> None:
    response = client.get(f"/console/{asset}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_console_script_names_no_other_host(client: TestClient) -> None:
    script = client.get("/console/app.js").text
    # The SVG namespace is a name, not a request.
    assert set(re.findall(r"https?://[^\s\"'`]+", script)) == {"http://www.w3.org/2000/svg"}


def test_a_file_the_console_does_not_have_is_a_404(client: TestClient) -> None:
    for path in ("/console/secret.py", "/console/index.html"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "NotFound"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_local_assets_that_answer(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200
    assert "http://" not in html.text
    assert "https://" not in html.text
    urls = urls_in(html.text)
    assert "/openapi.json" in urls
    assets = [url for url in urls if url != "/openapi.json"]
    assert any(url.endswith(".js") for url in assets)
    for url in assets:
        assert url.startswith("/docs/assets/"), url
        response = client.get(url)
        assert response.status_code == 200, url
        kind = response.headers["content-type"]
        assert kind.startswith(("text/javascript", "text/css", "image/png")), (url, kind)
        assert len(response.content) > 1000, url


def test_the_swagger_page_loads_its_styles_and_script(client: TestClient) -> None:
    urls = urls_in(client.get("/docs").text)
    assert "/docs/assets/swagger-ui-bundle.js" in urls
    assert "/docs/assets/swagger-ui.css" in urls
    css = client.get("/docs/assets/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css")


def test_the_api_itself_still_needs_a_key(client: TestClient) -> None:
    assert client.get("/collections").status_code == 401


def test_every_console_file_is_declared_as_package_data() -> None:
    """A wheel carries the console's files only where pyproject.toml declares them."""
    root = Path(__file__).resolve().parents[2]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["service.console"]
    package = Path(service.console.__file__).parent
    files = [p.relative_to(package).as_posix() for p in (package / "static").iterdir()]
    assert {"static/index.html", "static/app.js", "static/style.css"} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in declared), name
