"""What the web shell's pages show, composed from the territory and registry services.

Only counts ever reach these pages: no personal data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from citygrid.kit.errors import CitygridError, NotFound
from citygrid.kit.i18n import _, localised
from citygrid.registry import service as registry_service
from citygrid.registry.catalogue import load_component_classes
from citygrid.registry.service import GridSummary
from citygrid.territory import service as territory_service
from citygrid.territory.models import CODE_LENGTH, Level
from citygrid.territory.schemas import UnitRef

# The demo city's district, drawn when the database names no district of its own.
DEMO_DISTRICT_CODE = "440104"


@dataclass(frozen=True)
class CommunityEntry:
    """A community and its grids, for the list under the map."""

    code: str
    name_zh: str
    name_en: str
    grids: list[UnitRef]


@dataclass(frozen=True)
class StreetEntry:
    """A street and its communities, for the list under the map."""

    code: str
    name_zh: str
    name_en: str
    communities: list[CommunityEntry]

    @property
    def grid_count(self) -> int:
        """How many grids the street has."""
        return sum(len(community.grids) for community in self.communities)


@dataclass(frozen=True)
class MapOverview:
    """The district the map shows (None before any import) and its streets."""

    district_code: str
    district: UnitRef | None
    streets: list[StreetEntry]


@dataclass(frozen=True)
class ComponentCount:
    """How many components of one class a grid has."""

    code: str
    slug: str
    name: str
    count: int


@dataclass(frozen=True)
class ComponentGroup:
    """The component classes of one major class that a grid has."""

    code: str
    name: str
    classes: list[ComponentCount] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Components of every class of the group."""
        return sum(item.count for item in self.classes)


@dataclass(frozen=True)
class GridPage:
    """A grid's summary, the units above it (district first) and its counts."""

    summary: GridSummary
    ancestors: list[UnitRef]
    counts: dict[str, int]
    component_groups: list[ComponentGroup]


def first_district(session: Session) -> UnitRef | None:
    """The district the map opens on: the demo's, else the first one stored, else None."""
    try:
        unit = territory_service.get_unit(session, code=DEMO_DISTRICT_CODE)
    except CitygridError:
        return None
    return UnitRef(code=unit.code, level=unit.level, name_zh=unit.name_zh, name_en=unit.name_en)


def map_overview(session: Session) -> MapOverview:
    """The district of the map with its streets, communities and grids (names, no counts)."""
    district = first_district(session)
    if district is None:
        return MapOverview(district_code=DEMO_DISTRICT_CODE, district=None, streets=[])
    grids_by_community: dict[str, list[UnitRef]] = {}
    community_length = CODE_LENGTH[Level.COMMUNITY]
    for grid in territory_service.grids_under(session, code=district.code):
        grids_by_community.setdefault(grid.code[:community_length], []).append(grid)
    streets = []
    for street in territory_service.children(session, code=district.code):
        communities = [
            CommunityEntry(
                code=community.code,
                name_zh=community.name_zh,
                name_en=community.name_en,
                grids=grids_by_community.get(community.code, []),
            )
            for community in territory_service.children(session, code=street.code)
        ]
        streets.append(
            StreetEntry(
                code=street.code,
                name_zh=street.name_zh,
                name_en=street.name_en,
                communities=communities,
            )
        )
    return MapOverview(district_code=district.code, district=district, streets=streets)


def component_groups(components: dict[str, int]) -> list[ComponentGroup]:
    """The classes with at least one component, by major class, named in the current locale."""
    groups: dict[str, ComponentGroup] = {}
    known: set[str] = set()
    for item in load_component_classes():
        known.add(item.slug)
        count = components.get(item.slug, 0)
        if count <= 0:
            continue
        group = groups.setdefault(
            item.major_code,
            ComponentGroup(
                code=item.major_code, name=localised(item.major_name_zh, item.major_name_en)
            ),
        )
        group.classes.append(
            ComponentCount(
                code=item.code,
                slug=item.slug,
                name=localised(item.name_zh, item.name_en),
                count=count,
            )
        )
    # A class stored in the database but missing from the catalogue is still counted.
    others = [
        ComponentCount(code="", slug=slug, name=slug, count=count)
        for slug, count in sorted(components.items())
        if slug not in known and count > 0
    ]
    if others:
        groups["99"] = ComponentGroup(code="99", name=_("Other classes"), classes=others)
    return [groups[code] for code in sorted(groups)]


def grid_page(session: Session, *, code: str) -> GridPage:
    """Everything the grid page shows; NotFound for anything but a stored grid's code."""
    if len(code) != CODE_LENGTH[Level.GRID] or not (code.isascii() and code.isdigit()):
        raise NotFound(_("There is no grid with this code."))
    summary = registry_service.grid_summary(session, grid_code=code)
    ancestors = [
        unit
        for unit in territory_service.parent_chain(session, code=code)
        if unit.level is not Level.CITY
    ]
    counts = {
        "buildings": summary.buildings,
        "housing_units": summary.housing_units,
        "households": summary.households,
        "residents": summary.residents,
        "components": sum(summary.components.values()),
    }
    return GridPage(
        summary=summary,
        ancestors=ancestors,
        counts=counts,
        component_groups=component_groups(summary.components),
    )
