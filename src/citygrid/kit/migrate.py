"""Alembic, driven from code so an installed package can migrate its own database."""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config

from citygrid.kit.settings import normalise_database_url

# Every domain that owns tables; Alembic's autogenerate and the tests see them all.
MODEL_MODULES = (
    "citygrid.territory.models",
    "citygrid.registry.models",
    "citygrid.audit.models",
    "citygrid.access.models",
    "citygrid.cases.models",
    "citygrid.cases.open311.models",
    "citygrid.exchange.models",
    "citygrid.exchange.webhooks.models",
)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def load_all_models() -> None:
    """Import every domain's models so that ``Base.metadata`` knows every table."""
    for module in MODEL_MODULES:
        importlib.import_module(module)


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration for the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option(
        "file_template",
        "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d-%%(rev)s_%%(slug)s",
    )
    config.set_main_option("sqlalchemy.url", normalise_database_url(database_url))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database up to ``revision``."""
    # Domains built in parallel may leave several heads until they are chained: "heads" is
    # "head" when there is only one.
    if revision == "head":
        revision = "heads"
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Migrate the database down to ``revision``."""
    command.downgrade(alembic_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    from citygrid.kit.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            heads = MigrationContext.configure(connection).get_current_heads()
            return ",".join(sorted(heads)) or None
    finally:
        engine.dispose()
