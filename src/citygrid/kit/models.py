"""Declarative base and column helpers shared by every domain's tables."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

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
