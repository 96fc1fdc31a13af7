"""``citygrid territory ...`` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from citygrid.kit.errors import CitygridError, ValidationFailed

app = typer.Typer(
    help="Territory: districts, streets, communities and grids.", no_args_is_help=True
)

# Defined here rather than imported: ``citygrid.cli`` imports this module while it loads.
DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="SQLite database file (overrides CITYGRID_DATABASE_URL)."),
]


def _open_database(db: Path | None) -> str:
    """The database URL, after checking that the schema is there (exit 2 if not)."""
    from citygrid.cli import use_database
    from citygrid.kit import i18n
    from citygrid.kit.migrate import current_revision
    from citygrid.kit.settings import get_settings

    url = use_database(db)
    i18n.set_locale(get_settings().default_locale)
    if (db is not None and not db.exists()) or current_revision(url) is None:
        typer.echo(
            i18n._("The database has no schema yet: run `citygrid db upgrade` first."), err=True
        )
        raise typer.Exit(2)
    return url


def _print_rejection(error: ValidationFailed) -> None:
    typer.echo(error.message, err=True)
    for item in error.details or ():
        feature = "-" if item.get("feature") is None else item["feature"]
        code = item.get("code") or "-"
        typer.echo(
            f"  feature {feature}  code {code}  {item.get('field')}: {item.get('reason')}",
            err=True,
        )


@app.command("import")
def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="A GeoJSON FeatureCollection."
        ),
    ],
    db: DbOption = None,
    replace: Annotated[
        bool, typer.Option(help="Allow moving a stored district under another city.")
    ] = False,
) -> None:
    """Import territorial units from a GeoJSON file: all of it, or nothing if any is wrong."""
    from citygrid.kit.actor import Actor
    from citygrid.kit.db import unit_of_work
    from citygrid.territory.geojson import load_collection
    from citygrid.territory.service import import_feature_collection

    url = _open_database(db)
    try:
        collection = load_collection(file.read_bytes())
        with unit_of_work(url) as session:
            report = import_feature_collection(
                session, Actor(name="cli"), collection=collection, replace=replace
            )
    except ValidationFailed as error:
        _print_rejection(error)
        raise typer.Exit(2) from None
    typer.echo(
        f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}; "
        f"territory revision {report.revision}"
    )


@app.command("show")
def show(
    code: Annotated[str, typer.Argument(help="A 6, 9, 12 or 15 digit territorial code.")],
    db: DbOption = None,
) -> None:
    """Print a unit, the units above it and its children."""
    from citygrid.kit.db import unit_of_work
    from citygrid.territory.service import unit_detail

    url = _open_database(db)
    try:
        with unit_of_work(url) as session:
            unit = unit_detail(session, code=code)
    except CitygridError as error:
        typer.echo(error.message, err=True)
        raise typer.Exit(2 if isinstance(error, ValidationFailed) else 1) from None
    typer.echo(f"{unit.code}  {unit.level.value}  {unit.name_zh}  {unit.name_en}")
    typer.echo(f"  area     {unit.area_m2:,.0f} m2 ({unit.area_m2 / 1e6:.4f} km2)")
    typer.echo(f"  centroid {unit.centroid[0]:.6f}, {unit.centroid[1]:.6f} (lon, lat)")
    typer.echo("  bbox     " + ", ".join(f"{value:.6f}" for value in unit.bbox))
    if unit.parent_chain:
        typer.echo("  within   " + " > ".join(f"{p.code} {p.name_zh}" for p in unit.parent_chain))
    typer.echo(f"  children ({len(unit.children)})")
    for child in unit.children:
        typer.echo(f"    {child.code}  {child.level.value}  {child.name_zh}  {child.name_en}")
