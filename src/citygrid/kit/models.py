"""Declarative base and column helpers shared by every domain's tables."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import BigInteger, DateTime, Enum, Integer, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names: Alembic batch mode on SQLite needs them to alter tables.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# 64-bit keys on PostgreSQL; SQLite needs plain INTEGER for its rowid alias (it is 64-bit anyway).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Base class of every citygrid table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


#: The city's time zone: the dates of births, deaths and moves are its dates.
CITY_TIME_ZONE = timezone(timedelta(hours=8), "CST")


def city_today() -> date:
    """Today's date in the city (China Standard Time), whatever the server's time zone: from
    16:00 UTC it is already tomorrow there."""
    return utcnow().astimezone(CITY_TIME_ZONE).date()


class TimestampMixin:
    """created_at / updated_at columns maintained by the database and the ORM."""

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.current_timestamp(), default=utcnow
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.current_timestamp(),
        default=utcnow,
        onupdate=utcnow,
    )


def str_enum(cls: type[enum.Enum], length: int = 24) -> Enum:
    """A column type storing an enum's value string, guarded by a CHECK constraint."""
    return Enum(
        cls,
        native_enum=False,
        create_constraint=True,
        length=length,
        name=cls.__name__.lower(),
        values_callable=lambda members: [member.value for member in members],
    )
