"""foundation: territory and registry

Revision ID: 0001
Revises:
Create Date: 2026-11-27 18:02:59.475406
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "component_classes",
        sa.Column("code", sa.String(length=4), nullable=False),
        sa.Column("slug", sa.String(length=40), nullable=False),
        sa.Column("major_code", sa.String(length=2), nullable=False),
        sa.Column("major_name_zh", sa.String(length=50), nullable=False),
        sa.Column("major_name_en", sa.String(length=100), nullable=False),
        sa.Column("name_zh", sa.String(length=50), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("owner_department", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_component_classes")),
        sa.UniqueConstraint("slug", name=op.f("uq_component_classes_slug")),
    )
    op.create_table(
        "registry_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=40), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_changes")),
    )
    with op.batch_alter_table("registry_changes", schema=None) as batch_op:
        batch_op.create_index("ix_registry_changes_entity", ["entity", "entity_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_registry_changes_grid_code"), ["grid_code"], unique=False
        )

    op.create_table(
        "territorial_units",
        sa.Column("code", sa.String(length=15), nullable=False),
        sa.Column(
            "level",
            sa.Enum(
                "city",
                "district",
                "street",
                "community",
                "grid",
                name="level",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("parent_code", sa.String(length=15), nullable=True),
        sa.Column("name_zh", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("geometry", sa.Text(), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("centroid_lon", sa.Float(), nullable=False),
        sa.Column("centroid_lat", sa.Float(), nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint("area_m2 >= 0", name=op.f("ck_territorial_units_area_non_negative")),
        sa.CheckConstraint(
            "length(code) in (6, 9, 12, 15)", name=op.f("ck_territorial_units_code_length")
        ),
        sa.ForeignKeyConstraint(
            ["parent_code"],
            ["territorial_units.code"],
            name=op.f("fk_territorial_units_parent_code_territorial_units"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_territorial_units")),
    )
    with op.batch_alter_table("territorial_units", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_territorial_units_parent_code"), ["parent_code"], unique=False
        )

    op.create_table(
        "territory_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_territory_revisions")),
    )
    op.create_table(
        "buildings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("floors", sa.Integer(), nullable=False),
        sa.Column("built_year", sa.Integer(), nullable=True),
        sa.Column("qr_token", sa.String(length=32), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint("floors >= 1 AND floors <= 200", name=op.f("ck_buildings_floors_range")),
        sa.ForeignKeyConstraint(
            ["grid_code"],
            ["territorial_units.code"],
            name=op.f("fk_buildings_grid_code_territorial_units"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buildings")),
        sa.UniqueConstraint("qr_token", name=op.f("uq_buildings_qr_token")),
    )
    with op.batch_alter_table("buildings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_buildings_grid_code"), ["grid_code"], unique=False)

    op.create_table(
        "components",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("class_code", sa.String(length=4), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("identifier", sa.String(length=32), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column(
            "condition",
            sa.Enum(
                "good",
                "damaged",
                "missing",
                name="componentcondition",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("owner_department", sa.String(length=40), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["class_code"],
            ["component_classes.code"],
            name=op.f("fk_components_class_code_component_classes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_components")),
        sa.UniqueConstraint("identifier", name=op.f("uq_components_identifier")),
    )
    with op.batch_alter_table("components", schema=None) as batch_op:
        batch_op.create_index(
            "ix_components_grid_code_class_code", ["grid_code", "class_code"], unique=False
        )

    op.create_table(
        "housing_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("floor", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column(
            "use",
            sa.Enum(
                "owner_occupied",
                "rental",
                "vacant",
                "commercial",
                name="unituse",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("area_m2", sa.Float(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["building_id"], ["buildings.id"], name=op.f("fk_housing_units_building_id_buildings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_housing_units")),
    )
    with op.batch_alter_table("housing_units", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_housing_units_building_id"), ["building_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_housing_units_grid_code"), ["grid_code"], unique=False)

    op.create_table(
        "households",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column(
            "registration_type",
            sa.Enum(
                "family",
                "collective",
                name="registrationtype",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["housing_units.id"], name=op.f("fk_households_unit_id_housing_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_households")),
    )
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_households_grid_code"), ["grid_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_households_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "employer",
                "shop",
                "institution",
                name="organisationkind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("uscc", sa.String(length=18), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["housing_units.id"], name=op.f("fk_organisations_unit_id_housing_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("uscc", name=op.f("uq_organisations_uscc")),
    )
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organisations_grid_code"), ["grid_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_organisations_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "persons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=24), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("relation_to_head", sa.String(length=16), nullable=True),
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column(
            "sex",
            sa.Enum("M", "F", name="sex", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("ethnicity", sa.String(length=16), nullable=False),
        sa.Column("mobile", sa.String(length=20), nullable=True),
        sa.Column("landline", sa.String(length=20), nullable=True),
        sa.Column("employer_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "alive",
                "deceased",
                name="lifestatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("died_on", sa.Date(), nullable=True),
        sa.Column(
            "population_type",
            sa.Enum(
                "registered",
                "migrant",
                name="populationtype",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "marital_status",
            sa.Enum(
                "unmarried",
                "married",
                "divorced",
                "widowed",
                name="maritalstatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["employer_id"], ["organisations.id"], name=op.f("fk_persons_employer_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["household_id"], ["households.id"], name=op.f("fk_persons_household_id_households")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persons")),
        sa.UniqueConstraint("id_number", name=op.f("uq_persons_id_number")),
        sa.UniqueConstraint("ref", name=op.f("uq_persons_ref")),
    )
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.create_index("ix_persons_grid_code_name", ["grid_code", "name"], unique=False)
        batch_op.create_index(batch_op.f("ix_persons_household_id"), ["household_id"], unique=False)
        batch_op.create_index("ix_persons_name", ["name"], unique=False)

    op.create_table(
        "residences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "registered_address",
                "actual_residence",
                "tenant",
                name="residencekind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "until IS NULL OR until >= since", name=op.f("ck_residences_period_order")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_residences_person_id_persons")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["housing_units.id"], name=op.f("fk_residences_unit_id_housing_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_residences")),
    )
    with op.batch_alter_table("residences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_residences_grid_code"), ["grid_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_residences_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_residences_unit_id"), ["unit_id"], unique=False)


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("residences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_residences_unit_id"))
        batch_op.drop_index(batch_op.f("ix_residences_person_id"))
        batch_op.drop_index(batch_op.f("ix_residences_grid_code"))

    op.drop_table("residences")
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.drop_index("ix_persons_name")
        batch_op.drop_index(batch_op.f("ix_persons_household_id"))
        batch_op.drop_index("ix_persons_grid_code_name")

    op.drop_table("persons")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organisations_unit_id"))
        batch_op.drop_index(batch_op.f("ix_organisations_grid_code"))

    op.drop_table("organisations")
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_households_unit_id"))
        batch_op.drop_index(batch_op.f("ix_households_grid_code"))

    op.drop_table("households")
    with op.batch_alter_table("housing_units", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_housing_units_grid_code"))
        batch_op.drop_index(batch_op.f("ix_housing_units_building_id"))

    op.drop_table("housing_units")
    with op.batch_alter_table("components", schema=None) as batch_op:
        batch_op.drop_index("ix_components_grid_code_class_code")

    op.drop_table("components")
    with op.batch_alter_table("buildings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_buildings_grid_code"))

    op.drop_table("buildings")
    op.drop_table("territory_revisions")
    with op.batch_alter_table("territorial_units", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_territorial_units_parent_code"))

    op.drop_table("territorial_units")
    with op.batch_alter_table("registry_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_changes_grid_code"))
        batch_op.drop_index("ix_registry_changes_entity")

    op.drop_table("registry_changes")
    op.drop_table("component_classes")
