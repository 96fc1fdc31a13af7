"""Front-end libraries served from PyPI packages (xstatic-*): nothing from a CDN."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles


def mount_static_packages(app: FastAPI) -> None:
    """Serve Leaflet from the xstatic-leaflet package under /vendor/leaflet."""
    import xstatic.pkg.leaflet as leaflet

    app.mount("/vendor/leaflet", StaticFiles(directory=leaflet.BASE_DIR), name="leaflet")
