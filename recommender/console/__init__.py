"""The web console: Listen (`/`), Topics (`/topics`) and Pipeline (`/admin`) pages served by the API's FastAPI app.

Server-rendered Jinja2 templates plus a little vanilla JavaScript (static/), no build step. `install(app)` adds
the page routes, the admin JSON routes the Pipeline page reads (`/v1/admin/...`, X-API-Key) and the static files.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"


def install(app: FastAPI) -> None:
    """Register the console's routers and mount its static files at /console/static."""
    from recommender.console import admin, pages

    app.include_router(pages.router)
    app.include_router(admin.router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
