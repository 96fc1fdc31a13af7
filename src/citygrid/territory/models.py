"""Territorial units (city > district > street > community > grid) and their revision."""

from __future__ import annotations

import enum

from sqlalchemy import CheckConstraint, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citygrid.kit.models import Base, TimestampMixin, str_enum


class Level(enum.StrEnum):
    """The five levels of the territorial hierarchy."""

    CITY = "city"
    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    GRID = "grid"


# Length of the code at each level: 6-digit division (GB/T 2260) + 3 + 3 + 3.
CODE_LENGTH: dict[Level, int] = {
    Level.CITY: 6,
    Level.DISTRICT: 6,
    Level.STREET: 9,
    Level.COMMUNITY: 12,
    Level.GRID: 15,
}


class TerritorialUnit(TimestampMixin, Base):
    """One unit of territory with its boundary. Grids are the leaves that data hangs on."""

    __tablename__ = "territorial_units"
    __table_args__ = (
        CheckConstraint("length(code) in (6, 9, 12, 15)", name="code_length"),
        CheckConstraint("area_m2 >= 0", name="area_non_negative"),
    )

    code: Mapped[str] = mapped_column(String(15), primary_key=True)
    level: Mapped[Level] = mapped_column(str_enum(Level, 16))
    parent_code: Mapped[str | None] = mapped_column(
        String(15), ForeignKey("territorial_units.code", ondelete="RESTRICT"), index=True
    )
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(200))
    # GeoJSON geometry (Polygon or MultiPolygon) in WGS 84 longitude/latitude.
    geometry: Mapped[str] = mapped_column(Text)
    area_m2: Mapped[float] = mapped_column(Float)
    centroid_lon: Mapped[float] = mapped_column(Float)
    centroid_lat: Mapped[float] = mapped_column(Float)
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)


class TerritoryRevision(Base):
    """A counter bumped by every change of territory, so each process knows to rebuild
    its in-memory locator (the app may run as several processes)."""

    __tablename__ = "territory_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
