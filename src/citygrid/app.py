"""The ASGI application: pages, the JSON API (/api/v1) and static files, in one app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from citygrid import __version__
from citygrid.kit.db import get_session_factory
from citygrid.kit.settings import Settings, get_settings
from citygrid.kit.web import WEB_DIR, install_error_handlers, install_middleware
from citygrid.web.static_packages import mount_static_packages


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for the given settings (the environment's by default)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="citygrid",
        version=__version__,
        description="Grid-based city governance and cross-department data exchange.",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.session_factory = get_session_factory(settings.database_url)
    install_middleware(app)
    install_error_handlers(app)

    # Routers are imported here so that importing the app module stays cheap for the CLI.
    from citygrid.registry.api import router as registry_api
    from citygrid.territory.api import router as territory_api
    from citygrid.web.pages import router as web_pages

    app.include_router(territory_api)
    app.include_router(registry_api)
    app.include_router(web_pages)

    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")
    mount_static_packages(app)
    return app
