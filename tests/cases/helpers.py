"""Small builders shared by the cases tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.cases import service
from citygrid.cases.models import Case, CaseEventRecord, CaseTransition
from citygrid.cases.schemas import CaseCreate, TransitionCreate
from citygrid.kit.actor import Actor
from citygrid.territory.locator import Locator
from tests.cases.conftest import TILE_GRID
from tests.fixtures_territory import point_in_grid


def tile_report(grid_code: str = TILE_GRID, **overrides: Any) -> dict[str, Any]:
    """The JSON of Zhang Sijun's report of a broken pavement tile."""
    lon, lat = point_in_grid(grid_code)
    body: dict[str, Any] = {
        "category": "C0201",
        "description": "Three pavement tiles broken in front of No. 12 Jiefang Road",
        "priority": "high",
        "lat": lat,
        "lon": lon,
        "address": "12 Jiefang Road",
    }
    body.update(overrides)
    return body


def file_case(
    session: Session,
    actor: Actor,
    locator: Locator,
    *,
    now: datetime | None = None,
    **overrides: Any,
) -> Case:
    """File a case through the service (the tile report unless overridden)."""
    grid_code = overrides.pop("grid_code", TILE_GRID)
    data = CaseCreate.model_validate(tile_report(grid_code, **overrides))
    return service.create_case(session, actor, data=data, locator=locator, now=now).case


def step(
    session: Session,
    actor: Actor,
    case: Case,
    action: str,
    *,
    now: datetime | None = None,
    **fields: Any,
) -> Case:
    """Take one transition through the service."""
    request = TransitionCreate.model_validate({"action": action, **fields})
    return service.apply_transition(session, actor, case_ref=case.ref, request=request, now=now)


def count_cases(session: Session) -> int:
    """How many cases the database holds."""
    return int(session.scalar(select(func.count()).select_from(Case)) or 0)


def count_transitions(session: Session) -> int:
    """How many transitions the database holds."""
    return int(session.scalar(select(func.count()).select_from(CaseTransition)) or 0)


def event_names(session: Session, case_id: int) -> list[str]:
    """The names of a case's events, oldest first."""
    statement = (
        select(CaseEventRecord.name)
        .where(CaseEventRecord.case_id == case_id)
        .order_by(CaseEventRecord.id)
    )
    return list(session.scalars(statement))
