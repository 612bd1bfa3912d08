"""The web console: the single-page app built from web/ (`make web`), served by the API from its own origin so the
session cookie works without CORS. Each of the app's pages has a path here that answers with its index page (the
page routes in the browser); they are plain Starlette routes, outside the OpenAPI schema and away from /api, so
an unknown API path still gets the API's 404 and a wrong method its 405."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from nexus.core.settings import Settings

# The console's own paths (web/src/routes.ts): a reload or a shared link lands on the right page.
PAGES = (
    "/",
    "/signin",
    "/library",
    "/search",
    "/chat",
    "/chat/{conversation_id}",
    "/media/{media_id}",
    "/jobs/{job_id}",
    "/integrations",
    "/settings",
    "/operator",
)

NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Nexus</title></head>
<body><main><h1>The web console is not built</h1>
<p>Run <code>make web</code> (<code>make up</code> does it too), then reload. The API itself works: see
<a href="/docs">/docs</a>.</p></main></body></html>"""


def routes(settings: Settings) -> list[Route]:
    root = settings.console_dir

    async def page(request: Request) -> Response:
        index = root / "index.html"
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503)
        # Always revalidated: a new build must reach every open tab on its next navigation.
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})

    async def asset(request: Request) -> Response:
        path = _inside(root / "assets", request.path_params["name"])
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain")
        # File names carry a content hash (Vite): a changed file is a new name, so caching forever is safe.
        return FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable"})

    async def icon(request: Request) -> Response:
        path = _inside(root, "favicon.svg")
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(path, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})

    return [
        *(Route(p, page, methods=["GET", "HEAD"]) for p in PAGES),
        Route("/assets/{name}", asset, methods=["GET", "HEAD"]),
        Route("/favicon.svg", icon, methods=["GET", "HEAD"]),
    ]


def _inside(folder: Path, name: str) -> Path | None:
    """The file `name` directly inside `folder`, or None: no other directory, no dot files."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    path = folder / name
    return path if path.is_file() else None
