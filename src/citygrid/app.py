"""The ASGI application: pages, the JSON API (/api/v1) and static files, in one app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from citygrid import __version__
from citygrid.kit.db import get_session_factory
from citygrid.kit.settings import Settings, get_settings
from citygrid.kit.web import WEB_DIR, install_error_handlers, install_middleware
from citygrid.web.static_packages import mount_static_packages


def _lifespan(
    settings: Settings, start_worker: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The background tasks (audit sequencer, ...) in this process, unless a separate
        # `citygrid worker` runs them; several running at once is safe.
        app.state.worker = None
        if start_worker:
            from citygrid.kit.worker import worker_for

            app.state.worker = worker_for(settings)
            app.state.worker.start()
        try:
            yield
        finally:
            if app.state.worker is not None:
                await asyncio.to_thread(app.state.worker.stop)

    return lifespan


def create_app(settings: Settings | None = None, *, start_worker: bool = False) -> FastAPI:
    """Build the application for the given settings (the environment's by default);
    ``start_worker`` runs the background tasks in it while it serves (``citygrid serve``)."""
    settings = settings or get_settings()
    from citygrid.access.deps import identify_request, install_authentication

    app = FastAPI(
        title="citygrid",
        version=__version__,
        description="Grid-based city governance and cross-department data exchange.",
        docs_url="/docs",
        openapi_url="/openapi.json",
        # Every route learns who is calling (request.state.caller, for the layout) and gets
        # the CSRF check of cookie-authenticated POST/PUT/PATCH/DELETE; static files do not.
        dependencies=[Depends(identify_request)],
        lifespan=_lifespan(settings, start_worker),
    )
    app.state.settings = settings
    app.state.session_factory = get_session_factory(settings.database_url)
    install_middleware(app)
    install_error_handlers(app)
    install_authentication(app)

    # Routers are imported here so that importing the app module stays cheap for the CLI.
    from citygrid.access.auth_api import router as auth_api
    from citygrid.access.auth_pages import router as auth_pages
    from citygrid.access.persons_api import router as persons_api
    from citygrid.access.persons_pages import router as persons_pages
    from citygrid.access.purposes_api import router as purposes_api
    from citygrid.audit.api import router as audit_api
    from citygrid.audit.pages import router as audit_pages
    from citygrid.cases.api import router as cases_api
    from citygrid.cases.catalogue_pages import router as catalogue_pages
    from citygrid.cases.evaluation_pages import router as evaluation_pages
    from citygrid.cases.intake_pages import router as cases_intake_pages
    from citygrid.cases.open311.api import router as open311_api
    from citygrid.cases.pages import router as cases_pages
    from citygrid.exchange.api import router as exchange_api
    from citygrid.exchange.pages import router as exchange_pages
    from citygrid.exchange.webhooks.api import router as webhooks_api
    from citygrid.exchange.webhooks.pages import router as webhooks_pages
    from citygrid.exchange.worklist_api import router as tasks_api
    from citygrid.exchange.worklist_pages import router as tasks_pages
    from citygrid.registry.api import router as registry_api
    from citygrid.territory.api import router as territory_api
    from citygrid.web.pages import router as web_pages

    app.include_router(territory_api)
    app.include_router(registry_api)
    app.include_router(cases_api)
    app.include_router(open311_api)
    # Before any /cases/{case_ref} page: "/cases/new" is not a case reference.
    app.include_router(cases_intake_pages)
    app.include_router(evaluation_pages)
    app.include_router(catalogue_pages)
    app.include_router(cases_pages)
    app.include_router(exchange_api)
    app.include_router(webhooks_api)
    app.include_router(webhooks_pages)
    app.include_router(exchange_pages)
    app.include_router(web_pages)
    app.include_router(auth_api)
    app.include_router(auth_pages)
    app.include_router(purposes_api)
    app.include_router(persons_api)
    app.include_router(persons_pages)
    app.include_router(audit_api)
    app.include_router(audit_pages)
    app.include_router(tasks_api)
    app.include_router(tasks_pages)

    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")
    mount_static_packages(app)
    return app
