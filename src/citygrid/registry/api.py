"""Registry JSON routes: counts only, no personal data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from citygrid.kit.i18n import get_locale
from citygrid.kit.web import SessionDep
from citygrid.registry import service
from citygrid.registry.schemas import GridSummaryRead

router = APIRouter(prefix="/api/v1", tags=["registry"])

# Checked by the service rather than by a Path pattern, so that the error names the field
# ``code`` (the framework's validation would name it ``path.code``).
GridCodePath = Annotated[
    str, Path(description="The 15-digit grid code", examples=["440104001001002"])
]


@router.get("/grids/{code}/summary", response_model=GridSummaryRead)
def grid_summary(code: GridCodePath, session: SessionDep) -> GridSummaryRead:
    """How many buildings, units, households, residents and components a grid holds."""
    summary = service.grid_summary(session, grid_code=code)
    return GridSummaryRead(
        code=summary.code,
        name=(summary.name_en or summary.name_zh)
        if get_locale() == "en"
        else (summary.name_zh or summary.name_en),
        name_zh=summary.name_zh,
        name_en=summary.name_en,
        buildings=summary.buildings,
        housing_units=summary.housing_units,
        households=summary.households,
        residents=summary.residents,
        components=summary.components,
    )
