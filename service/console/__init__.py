"""The web console at ``/console``: static files (``static/``) shipped in this package and
served by the app, a page that talks to the public HTTP API only.

The files are public (the page asks for the API key itself and sends it as a header,
never a cookie, so there is nothing for another site to ride on). Every response carries
a Content-Security-Policy that lets the page load nothing from anywhere but this server;
images may also be ``blob:`` and ``data:`` URLs, which the page makes from what it
fetched (thumbnails) or what the user dropped (a photo to search by).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import Response
from starlette.exceptions import HTTPException

from service.routing import ApiRouter

router = ApiRouter(prefix="/console", include_in_schema=False)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def _static(name: str) -> Response:
    body = files(__name__).joinpath("static", name).read_bytes()
    return Response(
        body,
        media_type=_MEDIA_TYPES[name],
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            # Small files: revalidate each load so an upgraded server is seen at once.
            "Cache-Control": "no-cache",
        },
    )


@router.get("")
def console_page() -> Response:
    """The console's page."""
    return _static("index.html")


@router.get("/{asset}")
def console_asset(asset: str) -> Response:
    """The console's script, styles and icon."""
    if asset not in _MEDIA_TYPES or asset == "index.html":
        raise HTTPException(404, f"the console has no file {asset!r}")
    return _static(asset)
