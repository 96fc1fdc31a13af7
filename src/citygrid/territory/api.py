"""Territory JSON routes: units, their grids as GeoJSON for the map, and point location."""

from __future__ import annotations

import threading
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from citygrid.kit.web import SessionDep
from citygrid.territory import service
from citygrid.territory.locator import Locator, LocatorCache
from citygrid.territory.models import Level
from citygrid.territory.schemas import GridFeatureCollection, LocateRead, UnitDetail

router = APIRouter(prefix="/api/v1", tags=["territory"])

_cache_lock = threading.Lock()


class GeoJSONResponse(JSONResponse):
    """JSON with the GeoJSON media type (RFC 7946)."""

    media_type = "application/geo+json"


# How long a process trusts its locator before it checks the territory revision again: a
# change of territory reaches every process within this time, and a burst of locate calls
# costs no database query (and no hop through the thread pool) at all.
REVISION_CHECK_SECONDS = 1.0


async def get_locator(request: Request, session: SessionDep) -> Locator:
    """The process's locator, rebuilt first if the territory revision has changed."""
    state = request.app.state
    cache: LocatorCache | None = getattr(state, "locator_cache", None)
    if cache is None:
        with _cache_lock:
            cache = getattr(state, "locator_cache", None)
            if cache is None:
                cache = state.locator_cache = LocatorCache()
    fresh = cache.fresh_within(REVISION_CHECK_SECONDS)
    if fresh is not None:
        return fresh
    return await run_in_threadpool(cache.get, session)


LocatorDep = Annotated[Locator, Depends(get_locator)]


@router.get("/territory/{code}", response_model=UnitDetail)
def read_unit(code: str, session: SessionDep) -> UnitDetail:
    """A unit (no geometry), the units above it from the city down, and its children."""
    return service.unit_detail(session, code=code)


@router.get(
    "/territory/{code}/grids.geojson",
    response_model=GridFeatureCollection,
    response_class=GeoJSONResponse,
)
def read_unit_features(
    code: str,
    session: SessionDep,
    level: Annotated[
        Literal["street", "community", "grid"],
        Query(description="Which units under the code to draw"),
    ] = "grid",
) -> GridFeatureCollection:
    """The grids (or streets, or communities) under a unit as GeoJSON, with the registry's
    counts; ``name`` is in the request's language."""
    return service.unit_features(session, code=code, level=Level(level))


@router.get("/locate", response_model=LocateRead)
async def locate(
    locator: LocatorDep,
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False, description="WGS 84")],
    lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False, description="WGS 84")],
) -> LocateRead:
    """The grid holding a point, with its community, street, district (and city)."""
    # Async on purpose: the lookup is microseconds of memory work, and the database part
    # (the revision check) is in the dependency, so this saves a hop through the threadpool.
    return service.locate_point(locator, lon=lon, lat=lat)
