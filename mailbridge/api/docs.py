"""The API's documentation: ``GET /openapi.json`` (the document, for a token with ``read``) and
``GET /docs``, Swagger UI rendering it.

Swagger UI comes packaged (the ``swagger-ui-py`` distribution's static files, served from
``/docs/assets/``): no CDN, no request leaves the service. The page asks for a token, keeps it
in the browser tab's sessionStorage and sends it with the document's request and with every "Try
it out" call. Its script is a file of its own, so the page's Content-Security-Policy allows no
inline script. The page and its assets need no token: they hold no data.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from aiohttp import web

from mailbridge.api.access import authorize
from mailbridge.api.keys import CONFIG, DOCUMENT_CACHE, ROUTE_TABLE
from mailbridge.api.openapi import build_document

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
SCRIPT_PATH = "/docs/page.js"

DOCS_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
"""Swagger UI sets inline styles and shows data: images; scripts come from the service only."""

_SECURITY_HEADERS = {"Content-Security-Policy": DOCS_CSP, "X-Content-Type-Options": "nosniff",
                     "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def swagger_ui_assets() -> Path:
    """The folder of Swagger UI's static files in the installed ``swagger-ui-py`` package
    (found without importing it: its ``__init__`` loads Jinja2 and PyYAML, unused here)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        raise RuntimeError("the swagger-ui-py package is not installed (pip install swagger-ui-py)")
    return Path(spec.origin).parent / "static"


PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mailbridge API</title>
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
</head>
<body>
<form id="token-form" style="margin: 12px 20px; font: 14px system-ui, sans-serif">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="off" size="40"
       placeholder="a bearer token with the read scope">
<button type="submit">Show the API</button>
<span id="token-note">The token stays in this browser tab (sessionStorage) and goes with each
request as the Authorization header.</span>
</form>
<div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="{SCRIPT_PATH}"></script>
</body>
</html>
"""

SCRIPT = """"use strict";
(function () {
  var KEY = "mailbridge-token";
  var form = document.getElementById("token-form");
  var input = document.getElementById("token");
  function show(token) {
    window.ui = SwaggerUIBundle({
      url: "openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      requestInterceptor: function (request) {
        if (token) { request.headers.Authorization = "Bearer " + token; }
        return request;
      }
    });
  }
  input.value = sessionStorage.getItem(KEY) || "";
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    show(input.value.trim());
  });
  if (input.value) { show(input.value); }
})();
"""


async def openapi_json(request: web.Request) -> web.Response:
    """The document of the app's route table, with the limits of its configuration; built on
    the first request."""
    authorize(request, "read")
    cache = request.app[DOCUMENT_CACHE]
    if "document" not in cache:
        config = request.app.get(CONFIG)
        document = build_document(request.app[ROUTE_TABLE],
                                  config.server.limits if config is not None else None)
        cache["document"] = json.dumps(document, ensure_ascii=False, indent=1).encode()
    return web.Response(body=cache["document"], content_type="application/json",
                        headers={"Cache-Control": "no-cache"})


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers=_SECURITY_HEADERS)


async def page_script(request: web.Request) -> web.Response:
    return web.Response(text=SCRIPT, content_type="text/javascript", headers=_SECURITY_HEADERS)


def add_assets(app: web.Application) -> None:
    """Serves the page's script and Swagger UI's files (static, not in the route table: they
    are the page's parts, not API operations)."""
    app[DOCUMENT_CACHE] = {}
    app.router.add_get(SCRIPT_PATH, page_script)
    app.router.add_static(ASSETS_PATH, swagger_ui_assets())
