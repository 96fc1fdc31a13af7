"""Alembic environment: migrates the database named in the Alembic config."""

from __future__ import annotations

from alembic import context

from citygrid.kit.db import make_engine
from citygrid.kit.migrate import load_all_models
from citygrid.kit.models import Base

load_all_models()
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run migrations against a live connection (batch mode makes SQLite ALTERs work)."""
    url = context.config.get_main_option("sqlalchemy.url")
    connectable = context.config.attributes.get("connection")
    if connectable is not None:
        context.configure(
            connection=connectable, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection, target_metadata=target_metadata, render_as_batch=True
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("citygrid migrations run online only")
run_migrations_online()
