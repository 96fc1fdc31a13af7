"""Pages of personal data, all through the access gateway: the grid worker's "my grid", an
official's territory, a grid's residents, the person page with reveal, and search.

No personal data in any URL: persons are addressed by their opaque ref, and the search form
is POSTed so that names and ID numbers stay out of addresses, history and logs. Like the API
(see ``persons_api``), each page commits its read and log entry before answering, and a
refusal is logged (committed) before its error page is shown.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from citygrid.access import gateway
from citygrid.access.deps import CurrentActor
from citygrid.access.persons_api import begin_audited_read, commit_before_answering
from citygrid.access.policy import Purpose
from citygrid.kit.actor import Actor
from citygrid.kit.clock import local_today
from citygrid.kit.errors import CitygridError, NotFound
from citygrid.kit.i18n import _, localised
from citygrid.kit.web import SessionDep, render
from citygrid.registry import repository as registry
from citygrid.registry import service as registry_service
from citygrid.registry.models import Building
from citygrid.registry.schemas import ETHNIC_GROUPS
from citygrid.territory import service as territory
from citygrid.territory.schemas import UnitRef

router = APIRouter(include_in_schema=False)

#: Residents per page of a grid's list.
PAGE_SIZE = 50
#: The purposes a page offers first, when the role has them.
PREFERRED_PURPOSES = ("patrol-update", "case-handling")


# ============================================================================ labels


def field_labels() -> dict[str, str]:
    """Every person field's label in the current locale."""
    return {
        "ref": _("Reference"),
        "grid_code": _("Grid"),
        "name": _("Name"),
        "id_number": _("ID number"),
        "sex": _("Sex"),
        "birth_date": _("Date of birth"),
        "ethnicity": _("Ethnic group"),
        "status": _("Status"),
        "mobile": _("Mobile phone"),
        "landline": _("Landline"),
        "address": _("Address"),
        "population_type": _("Population type"),
        "household_ref": _("Household"),
        "relation_to_head": _("Relation to head"),
        "marital_status": _("Marital status"),
    }


def class_labels() -> dict[str, str]:
    """Every field class's label in the current locale."""
    return {
        "identity": _("Identity"),
        "contact": _("Contact"),
        "household_registration": _("Household registration"),
        "marital": _("Marriage and childbearing"),
        "allowance": _("Subsistence allowance"),
        "pension": _("Pension"),
        "tenancy": _("Tenancy"),
        "criminal_record": _("Criminal record"),
    }


def value_labels() -> dict[str, dict[str, str]]:
    """Labels of coded values, per field, in the current locale."""
    return {
        "sex": {"M": _("Male"), "F": _("Female")},
        "status": {"alive": _("Alive"), "deceased": _("Deceased")},
        "population_type": {"registered": _("Registered"), "migrant": _("Migrant")},
        "relation_to_head": {
            "head": _("Head"),
            "spouse": _("Spouse"),
            "child": _("Child"),
            "parent": _("Parent"),
            "grandchild": _("Grandchild"),
            "sibling": _("Sibling"),
            "other": _("Other"),
        },
        "marital_status": {
            "unmarried": _("Unmarried"),
            "married": _("Married"),
            "divorced": _("Divorced"),
            "widowed": _("Widowed"),
        },
        "ethnicity": {code: localised(zh, en) for code, (zh, en) in ETHNIC_GROUPS.items()},
    }


def _page_context() -> dict[str, Any]:
    classes = class_labels()
    return {
        "field_labels": field_labels(),
        "class_labels": classes,
        "value_labels": value_labels(),
        "class_names": lambda names: ", ".join(classes.get(name, name) for name in names),
        "purpose_name": lambda purpose: localised(purpose.name_zh, purpose.name_en),
    }


# ============================================================================ helpers


def _purposes(actor: Actor) -> list[Purpose]:
    return gateway.allowed_purposes(actor)


def _default_purpose(actor: Actor) -> str | None:
    codes = [purpose.code for purpose in _purposes(actor)]
    for code in PREFERRED_PURPOSES:
        if code in codes:
            return code
    return codes[0] if codes else None


def _refused(request: Request, session: Session, error: CitygridError) -> HTMLResponse:
    """The error page, after logging (and committing) the refusal the error carries."""
    gateway.record_denial(session, error)
    commit_before_answering(session)
    return render(
        request,
        "error.html",
        status_code=error.status_code,
        error=error.to_dict()["error"],
        status=error.status_code,
        show_message=True,
    )


def _show(request: Request, session: Session, template: str, **context: Any) -> HTMLResponse:
    """Render, then commit the read and its log entry, then answer."""
    response = render(request, template, **_page_context(), **context)
    commit_before_answering(session)
    return response


def _my_grids(actor: Actor) -> list[str]:
    return [code for code in actor.scopes if len(code) == 15 and code.isdigit()]


def _in_scope(actor: Actor, code: str) -> bool:
    return any(code.startswith(prefix) for prefix in actor.scopes if prefix.isdigit())


@dataclass(frozen=True)
class BuildingEntry:
    """A building of a grid with its counts (no personal data)."""

    id: int
    address: str
    name: str | None
    floors: int
    units: int
    residents: int


def _buildings(session: Session, grid_code: str) -> list[BuildingEntry]:
    return [
        BuildingEntry(*row)
        for row in registry.buildings_of_grid(session, grid_code=grid_code, today=local_today())
    ]


def _grid_ref(session: Session, code: str) -> UnitRef:
    unit = territory.get_unit(session, code=code)
    return UnitRef(code=unit.code, level=unit.level, name_zh=unit.name_zh, name_en=unit.name_en)


# ============================================================================ my grid


@router.get("/my/grid", response_class=HTMLResponse)
def my_grid(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    grid: Annotated[str | None, Query(max_length=15)] = None,
    purpose: Annotated[str | None, Query(max_length=60)] = None,
) -> Response:
    """The grid worker's grid: its buildings (counts only), each opening its residents."""
    grids = _my_grids(actor)
    if not grids:
        return RedirectResponse("/my/territory", status_code=303)
    code = grid if grid in grids else grids[0]
    try:
        grid_unit = _grid_ref(session, code)
    except CitygridError as error:
        return _refused(request, session, error)
    return _show(
        request,
        session,
        "persons/my_grid.html",
        grid=grid_unit,
        grids=grids,
        buildings=_buildings(session, code),
        purposes=_purposes(actor),
        purpose=purpose or _default_purpose(actor),
    )


@router.get("/my/grid/buildings/{building_id}", response_class=HTMLResponse)
def my_building(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    building_id: int,
    purpose: Annotated[str | None, Query(max_length=60)] = None,
) -> Response:
    """A building's units and who lives in each, masked, for the purpose chosen (audited)."""
    chosen = purpose or _default_purpose(actor)
    begin_audited_read(session)
    try:
        page = gateway.list_persons(
            session,
            actor,
            purpose=chosen,
            building_id=building_id,
            limit=gateway.MAX_LIMIT,
            placement=True,
        )
    except CitygridError as error:
        return _refused(request, session, error)
    building = registry_service.get_building(session, building_id=building_id)
    residents: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
    for item, unit_id in zip(page.items, page.unit_ids, strict=True):
        residents[unit_id].append(item)
    units = registry.units_of_building(session, building_id=building_id)
    return _show(
        request,
        session,
        "persons/building.html",
        building=_building_entry(building),
        grid=_grid_ref(session, building.grid_code),
        units=units,
        residents=residents,
        page=page,
        purposes=_purposes(actor),
        purpose=page.purpose,
    )


def _building_entry(building: Building) -> BuildingEntry:
    return BuildingEntry(
        id=building.id,
        address=building.address,
        name=building.name,
        floors=building.floors,
        units=0,
        residents=0,
    )


# ============================================================================ territory


@dataclass(frozen=True)
class TerritoryEntry:
    """A unit of the caller's territory with the counts of everything under it."""

    unit: UnitRef
    residents: int
    households: int
    buildings: int
    grids: int


def _territory_entries(session: Session, code: str) -> list[TerritoryEntry]:
    counts = registry_service.counts_by_grid(session, code_prefix=code)
    if len(code) == 15:
        children = [_grid_ref(session, code)]
    else:
        children = territory.children(session, code=code)
    entries = []
    for child in children:
        under = [value for grid, value in counts.items() if grid.startswith(child.code)]
        entries.append(
            TerritoryEntry(
                unit=child,
                residents=sum(item.residents for item in under),
                households=sum(item.households for item in under),
                buildings=sum(item.buildings for item in under),
                grids=len(under),
            )
        )
    return entries


def _unit_code(scope: str) -> str:
    """The unit a scope prefix stands for: a city's districts share 4 digits (4401 of 440100)."""
    return scope + "00" if len(scope) == 4 else scope


@router.get("/my/territory", response_class=HTMLResponse)
def my_territory(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    unit: Annotated[str | None, Query(max_length=15)] = None,
) -> Response:
    """The caller's territory: each scope's streets, communities and grids with counts (no
    personal data); a grid opens its residents."""
    scopes = [_unit_code(code) for code in actor.scopes if code.isdigit()]
    scopes = [code for code in scopes if len(code) in (6, 9, 12, 15)]
    try:
        if unit is not None:
            if not _in_scope(actor, unit):
                raise NotFound(_("Nothing found here."))
            sections = [(territory.get_unit(session, code=unit), _territory_entries(session, unit))]
            chain = territory.parent_chain(session, code=unit)
        else:
            sections = [
                (territory.get_unit(session, code=code), _territory_entries(session, code))
                for code in scopes
            ]
            chain = []
    except CitygridError as error:
        return _refused(request, session, error)
    return _show(
        request,
        session,
        "persons/territory.html",
        sections=sections,
        chain=[ref for ref in chain if _in_scope(actor, ref.code)],
        purposes=_purposes(actor),
        purpose=_default_purpose(actor),
    )


@router.get("/my/territory/grids/{code}", response_class=HTMLResponse)
def grid_residents(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    code: str,
    purpose: Annotated[str | None, Query(max_length=60)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    """A grid's residents, masked, a page at a time, for the purpose chosen (audited)."""
    chosen = purpose or _default_purpose(actor)
    begin_audited_read(session)
    try:
        listing = gateway.list_persons(
            session,
            actor,
            purpose=chosen,
            grid_code=code,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        grid = _grid_ref(session, code)
    except CitygridError as error:
        return _refused(request, session, error)
    pages = max(1, -(-listing.total // PAGE_SIZE))
    return _show(
        request,
        session,
        "persons/grid_residents.html",
        grid=grid,
        listing=listing,
        page_number=page,
        pages=pages,
        purposes=_purposes(actor),
        purpose=listing.purpose,
    )


# ============================================================================ person


def _person_page(
    request: Request,
    session: SessionDep,
    actor: Actor,
    ref: str,
    purpose: str | None,
    revealed: gateway.Revealed | None = None,
) -> Response:
    if not purpose:
        # Nothing is read before a purpose is chosen.
        return _show(
            request,
            session,
            "persons/person.html",
            ref=ref,
            detail=None,
            revealed=None,
            purposes=_purposes(actor),
            purpose=_default_purpose(actor),
        )
    if revealed is None:
        begin_audited_read(session)
    try:
        detail = gateway.get_person(session, actor, person_ref=ref, purpose=purpose)
    except CitygridError as error:
        return _refused(request, session, error)
    return _show(
        request,
        session,
        "persons/person.html",
        ref=ref,
        detail=detail,
        revealed=revealed,
        purposes=_purposes(actor),
        purpose=detail.purpose,
    )


@router.get("/persons/search", response_class=HTMLResponse)
def search_form(request: Request, session: SessionDep, actor: CurrentActor) -> Response:
    """The search form (POSTed: the terms never enter a URL)."""
    return _show(
        request,
        session,
        "persons/search.html",
        results=None,
        purposes=_purposes(actor),
        purpose=_default_purpose(actor),
        name="",
        id_number="",
        match="exact",
    )


@router.post("/persons/search", response_class=HTMLResponse)
def search_results(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    purpose: Annotated[str | None, Form(max_length=60)] = None,
    name: Annotated[str | None, Form(max_length=50)] = None,
    id_number: Annotated[str | None, Form(max_length=18)] = None,
    match: Annotated[Literal["exact", "prefix"], Form()] = "exact",
) -> Response:
    """Search results, masked, inside the caller's scope (audited with the number found)."""
    begin_audited_read(session)
    try:
        results = gateway.search_persons(
            session,
            actor,
            purpose=purpose,
            name=name,
            name_prefix=match == "prefix",
            id_number=id_number,
            limit=gateway.MAX_SEARCH_LIMIT,
        )
    except CitygridError as error:
        return _refused(request, session, error)
    return _show(
        request,
        session,
        "persons/search.html",
        results=results,
        purposes=_purposes(actor),
        purpose=results.purpose,
        # Echoed into the form only (the answer is no-store and never in a URL).
        name=name or "",
        id_number=id_number or "",
        match=match,
    )


@router.get("/persons/{ref}", response_class=HTMLResponse)
def person_page(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    ref: str,
    purpose: Annotated[str | None, Query(max_length=60)] = None,
) -> Response:
    """One person, masked, for the purpose chosen (audited), with the reveal form."""
    return _person_page(request, session, actor, ref, purpose)


@router.post("/persons/{ref}/reveal", response_class=HTMLResponse)
def reveal_fields(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    ref: str,
    purpose: Annotated[str | None, Form(max_length=60)] = None,
    fields: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Reveal the chosen fields for the purpose (audited); shown once on this answer."""
    begin_audited_read(session)
    try:
        revealed = gateway.reveal(
            session, actor, person_ref=ref, purpose=purpose, fields=fields or []
        )
    except CitygridError as error:
        return _refused(request, session, error)
    return _person_page(request, session, actor, ref, purpose, revealed=revealed)
