"""Shapes of territory data in and out of the API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from citygrid.territory.models import Level


class UnitRef(BaseModel):
    """A unit's code, level and names (no geometry)."""

    model_config = ConfigDict(from_attributes=True)

    code: str
    level: Level
    name_zh: str
    name_en: str


class UnitRead(UnitRef):
    """A unit with its measures; ``centroid`` is [lon, lat], ``bbox`` is
    [min_lon, min_lat, max_lon, max_lat] (GeoJSON order, WGS 84 degrees)."""

    parent_code: str | None
    area_m2: float = Field(description="Ellipsoidal area in square metres")
    centroid: tuple[float, float]
    bbox: tuple[float, float, float, float]


class UnitDetail(UnitRead):
    """A unit, the chain of units above it (city first) and its direct children."""

    parent_chain: list[UnitRef]
    children: list[UnitRef]


class ImportReport(BaseModel):
    """What an import did: units created, updated (names, boundary or parent changed) and
    left unchanged, and the territory revision after it."""

    created: int
    updated: int
    unchanged: int
    revision: int


class LocatedUnit(BaseModel):
    """A unit found around a point."""

    code: str
    name_zh: str
    name_en: str


class LocateRead(BaseModel):
    """The grid a point lies in and the units above it."""

    grid: LocatedUnit
    community: LocatedUnit
    street: LocatedUnit
    district: LocatedUnit
    city: LocatedUnit | None = None


class UnitCounts(BaseModel):
    """Counts of what the registry holds in a unit (sums over its grids)."""

    buildings: int = 0
    housing_units: int = 0
    households: int = 0
    residents: int = 0
    components: int = Field(0, description="All urban components, every class")
    components_by_class: dict[str, int] = Field(default_factory=dict)


class GridFeatureProperties(UnitCounts):
    """Properties of one unit in the map's GeoJSON; ``name`` is in the request's locale."""

    code: str
    level: Level
    name: str
    name_zh: str
    name_en: str


class GridFeature(BaseModel):
    """A GeoJSON Feature of a unit."""

    type: Literal["Feature"] = "Feature"
    id: str
    properties: GridFeatureProperties
    geometry: dict[str, Any]


class GridFeatureCollection(BaseModel):
    """A GeoJSON FeatureCollection of units (WGS 84 lon/lat)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[GridFeature]
