"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served
with their scripts and styles from this server: they work offline, and a page of the API
asks no other host for anything.

The assets are those the ``fastapi-offline`` package ships (Swagger UI 5 and ReDoc 2,
each under its own license, named in its file's first line); only the files themselves
are used, served at ``/docs/assets/{asset}``.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import Response
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

from service.routing import ApiRouter

router = ApiRouter(include_in_schema=False)

ASSETS_PATH = "/docs/assets"
_MEDIA_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
_TITLE = "vecserve API"


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    """Swagger UI over ``/openapi.json``."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=_TITLE,
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        oauth2_redirect_url="/docs/oauth2-redirect",
        # Swagger UI would send the document to an online validator for its badge.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/docs/oauth2-redirect")
def swagger_ui_redirect() -> HTMLResponse:
    """Swagger UI's OAuth2 redirect page."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc() -> HTMLResponse:
    """ReDoc over ``/openapi.json``, without web fonts (they would come from elsewhere)."""
    return get_redoc_html(
        openapi_url="/openapi.json",
        title=_TITLE,
        redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )


@router.get(ASSETS_PATH + "/{asset}")
def docs_asset(asset: str) -> Response:
    """One of the documentation pages' scripts, styles or icon."""
    if asset not in _MEDIA_TYPES:
        raise HTTPException(404, f"the documentation has no file {asset!r}")
    body = files("fastapi_offline").joinpath("static", asset).read_bytes()
    return Response(
        body,
        media_type=_MEDIA_TYPES[asset],
        headers={"Cache-Control": "public, max-age=86400"},
    )
