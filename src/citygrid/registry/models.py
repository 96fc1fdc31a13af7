"""The registry: buildings, housing units, households, persons, residences, urban
components, organisations, and the change history of every row.

Every row that holds or points at personal data carries ``grid_code`` (the 15-digit grid
code), so a territorial scope is an indexed range scan on that column.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from citygrid.kit.models import Base, TimestampMixin, str_enum, utcnow


class UnitUse(enum.StrEnum):
    """How a housing unit is used."""

    OWNER_OCCUPIED = "owner_occupied"
    RENTAL = "rental"
    VACANT = "vacant"
    COMMERCIAL = "commercial"


class RegistrationType(enum.StrEnum):
    """Household registration (hukou) type of a household."""

    FAMILY = "family"  # 家庭户
    COLLECTIVE = "collective"  # 集体户


class Sex(enum.StrEnum):
    """Sex as encoded in the ID number (odd sequence: male)."""

    MALE = "M"
    FEMALE = "F"


class PopulationType(enum.StrEnum):
    """Registered (户籍人口) or migrant (流动人口) population."""

    REGISTERED = "registered"
    MIGRANT = "migrant"


class LifeStatus(enum.StrEnum):
    """Whether a person is alive."""

    ALIVE = "alive"
    DECEASED = "deceased"


class MaritalStatus(enum.StrEnum):
    """Marital status as held by family planning."""

    UNMARRIED = "unmarried"
    MARRIED = "married"
    DIVORCED = "divorced"
    WIDOWED = "widowed"


class ResidenceKind(enum.StrEnum):
    """The relation of a person to a housing unit."""

    REGISTERED_ADDRESS = "registered_address"  # 户籍地址
    ACTUAL_RESIDENCE = "actual_residence"  # 实际居住
    TENANT = "tenant"  # 租户


class ComponentCondition(enum.StrEnum):
    """Condition of an urban component."""

    GOOD = "good"
    DAMAGED = "damaged"
    MISSING = "missing"


class OrganisationKind(enum.StrEnum):
    """Kind of organisation."""

    EMPLOYER = "employer"
    SHOP = "shop"
    INSTITUTION = "institution"


class Building(TimestampMixin, Base):
    """A building with the opaque token printed on the QR plate at its door."""

    __tablename__ = "buildings"
    __table_args__ = (
        CheckConstraint("floors >= 1 AND floors <= 200", name="floors_range"),
        # Open311's address_string is matched against building addresses.
        Index("ix_buildings_address", "address"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_code: Mapped[str] = mapped_column(
        String(15), ForeignKey("territorial_units.code"), index=True
    )
    address: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(100))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    floors: Mapped[int] = mapped_column(Integer)
    built_year: Mapped[int | None] = mapped_column(Integer)
    qr_token: Mapped[str] = mapped_column(String(32), unique=True)


class HousingUnit(TimestampMixin, Base):
    """A flat, office or shop inside a building."""

    __tablename__ = "housing_units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"), index=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    floor: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(16))
    use: Mapped[UnitUse] = mapped_column(str_enum(UnitUse))
    area_m2: Mapped[float | None] = mapped_column(Float)


class Household(TimestampMixin, Base):
    """A household (户): its unit and registration type; members are persons whose
    ``household_id`` points here, the head being the one with ``relation_to_head == "head"``."""

    __tablename__ = "households"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("housing_units.id"), index=True)
    registration_type: Mapped[RegistrationType] = mapped_column(str_enum(RegistrationType))


class Person(TimestampMixin, Base):
    """A resident. Personal data: read only through the access gateway."""

    __tablename__ = "persons"
    __table_args__ = (
        Index("ix_persons_grid_code_name", "grid_code", "name"),
        Index("ix_persons_name", "name"),
        # Covers the bulk import's look-up of persons' keys by ID number (migration 0016).
        Index("ix_persons_id_number_keys", "id_number", "ref", "grid_code", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Opaque identifier for URLs and APIs; never the ID number.
    ref: Mapped[str] = mapped_column(String(24), unique=True)
    grid_code: Mapped[str] = mapped_column(String(15))
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    relation_to_head: Mapped[str | None] = mapped_column(String(16))
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(50))
    sex: Mapped[Sex] = mapped_column(str_enum(Sex, 1))
    birth_date: Mapped[date] = mapped_column(Date)
    ethnicity: Mapped[str] = mapped_column(String(16))
    mobile: Mapped[str | None] = mapped_column(String(20))
    landline: Mapped[str | None] = mapped_column(String(20))
    employer_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    status: Mapped[LifeStatus] = mapped_column(str_enum(LifeStatus), default=LifeStatus.ALIVE)
    died_on: Mapped[date | None] = mapped_column(Date)
    population_type: Mapped[PopulationType] = mapped_column(str_enum(PopulationType))
    marital_status: Mapped[MaritalStatus | None] = mapped_column(str_enum(MaritalStatus))


class Residence(TimestampMixin, Base):
    """A person's tie to a housing unit over a period."""

    __tablename__ = "residences"
    __table_args__ = (CheckConstraint("until IS NULL OR until >= since", name="period_order"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("housing_units.id"), index=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    kind: Mapped[ResidenceKind] = mapped_column(str_enum(ResidenceKind))
    since: Mapped[date] = mapped_column(Date)
    until: Mapped[date | None] = mapped_column(Date)


class ComponentClass(Base):
    """A class of urban component: 2-digit major + 2-digit minor code."""

    __tablename__ = "component_classes"

    code: Mapped[str] = mapped_column(String(4), primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    major_code: Mapped[str] = mapped_column(String(2))
    major_name_zh: Mapped[str] = mapped_column(String(50))
    major_name_en: Mapped[str] = mapped_column(String(100))
    name_zh: Mapped[str] = mapped_column(String(50))
    name_en: Mapped[str] = mapped_column(String(100))
    owner_department: Mapped[str] = mapped_column(String(40))


class Component(TimestampMixin, Base):
    """An urban component (部件): a manhole cover, a tree, a street lamp ..."""

    __tablename__ = "components"
    __table_args__ = (Index("ix_components_grid_code_class_code", "grid_code", "class_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    class_code: Mapped[str] = mapped_column(ForeignKey("component_classes.code"))
    grid_code: Mapped[str] = mapped_column(String(15))
    # Object identifier: grid code + class code + serial, as printed on the asset.
    identifier: Mapped[str] = mapped_column(String(32), unique=True)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    condition: Mapped[ComponentCondition] = mapped_column(
        str_enum(ComponentCondition), default=ComponentCondition.GOOD
    )
    owner_department: Mapped[str] = mapped_column(String(40))


class Organisation(TimestampMixin, Base):
    """An employer, shop or institution, with the unit it occupies."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[OrganisationKind] = mapped_column(str_enum(OrganisationKind))
    # Unified social credit code (GB 32100), validated on write.
    uscc: Mapped[str | None] = mapped_column(String(18), unique=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("housing_units.id"), index=True)


class RegistryChange(Base):
    """History of every change to a registry row: who, when, before and after."""

    __tablename__ = "registry_changes"
    __table_args__ = (Index("ix_registry_changes_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int] = mapped_column(Integer)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    action: Mapped[str] = mapped_column(String(16))  # create / update / delete
    actor: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
