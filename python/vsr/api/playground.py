"""The routing playground: a page at ``/`` (and ``/ui``) that routes a prompt or a pasted chat
request through ``POST /api/v1/route`` and shows why vsr chose what it chose.

The page is three small committed files under ``api/static/`` (HTML, CSS, plain JavaScript, no
framework and no build step), served from the package, so it works with no internet access.
``GET /info/config`` gives it the loaded policy to show beside the results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
PAGE = STATIC_DIR / "playground.html"


def install(app: FastAPI) -> None:
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="playground-static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(PAGE, media_type="text/html")

    @app.get("/ui", include_in_schema=False)
    async def ui() -> FileResponse:
        return FileResponse(PAGE, media_type="text/html")

    @app.get("/info/config", tags=["info"])
    async def config(request: Request) -> dict[str, Any]:
        """The routing policy in force (as loaded and validated) and its generation number."""
        state = request.app.state.vsr
        generation = state.generation()
        router = state.router()
        return {
            "generation": generation.number,
            "source": str(generation.source) if generation.source else None,
            "config": router.config.model_dump(mode="json", exclude_defaults=True),
        }
