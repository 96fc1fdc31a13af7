"""The catalogue of urban component classes: the file's invariants, loading, syncing."""

from __future__ import annotations

import tomllib

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.registry.catalogue import (
    CATALOGUE_PATH,
    CatalogueError,
    load_component_classes,
    parse_component_classes,
    sync_component_classes,
)
from citygrid.registry.models import ComponentClass
from citygrid.registry.schemas import DEPARTMENT_SLUGS

MAJORS = {
    "01": "公用设施",
    "02": "道路交通",
    "03": "市容环境",
    "04": "园林绿化",
    "05": "房屋土地",
    "06": "其他设施",
}


def test_the_catalogue_file_follows_the_national_majors_and_its_own_invariants() -> None:
    classes = load_component_classes()

    assert len(classes) >= 20
    codes = [item.code for item in classes]
    slugs = [item.slug for item in classes]
    assert len(set(codes)) == len(codes)
    assert len(set(slugs)) == len(slugs)
    for item in classes:
        assert item.code == item.major_code + item.code[2:]
        assert len(item.code) == 4 and item.code.isdigit()
        assert item.major_name_zh == MAJORS[item.major_code]
        assert item.major_name_en and item.name_zh and item.name_en
        assert item.owner_department in DEPARTMENT_SLUGS
    assert {item.major_code for item in classes} == set(MAJORS)


@pytest.mark.parametrize(
    ("slug", "major", "department"),
    [
        ("manhole_cover", "01", "water-affairs"),
        ("street_lamp", "01", None),
        ("fire_hydrant", "01", None),
        ("electricity_box", "01", None),
        ("floor_tiles", "02", "housing-construction"),
        ("traffic_sign", "02", None),
        ("bus_stop", "02", None),
        ("public_toilet", "03", None),
        ("rubbish_bin", "03", None),
        ("tree", "04", None),
        ("flower_bed", "04", None),
        ("green_space", "04", None),
    ],
)
def test_the_classes_other_parts_rely_on_are_there(
    slug: str, major: str, department: str | None
) -> None:
    by_slug = {item.slug: item for item in load_component_classes()}

    assert by_slug[slug].major_code == major
    if department is not None:
        assert by_slug[slug].owner_department == department


def _document() -> dict:
    with CATALOGUE_PATH.open("rb") as catalogue_file:
        return tomllib.load(catalogue_file)


def test_a_duplicate_code_or_slug_or_a_stray_major_is_refused() -> None:
    document = _document()
    first = dict(document["classes"][0])

    duplicate_code = {**document, "classes": [*document["classes"], {**first, "slug": "x_y"}]}
    with pytest.raises(CatalogueError, match="appears twice"):
        parse_component_classes(duplicate_code)

    duplicate_slug = {**document, "classes": [*document["classes"], {**first, "code": "0199"}]}
    with pytest.raises(CatalogueError, match="appears twice"):
        parse_component_classes(duplicate_slug)

    stray_major = {**document, "classes": [{**first, "code": "0901"}]}
    with pytest.raises(CatalogueError, match="major"):
        parse_component_classes(stray_major)

    unknown_department = {**document, "classes": [{**first, "department": "ministry-of-fun"}]}
    with pytest.raises(CatalogueError):
        parse_component_classes(unknown_department)


def test_syncing_the_catalogue_fills_the_table_once_and_repairs_drift(
    db_session: Session,
) -> None:
    classes = load_component_classes()
    before = {row.code for row in db_session.scalars(select(ComponentClass))}

    first = sync_component_classes(db_session)
    second = sync_component_classes(db_session)

    rows = {row.code: row for row in db_session.scalars(select(ComponentClass))}
    assert first == len({item.code for item in classes} - before)
    assert second == 0
    assert {item.code for item in classes} <= set(rows)
    tree = next(item for item in classes if item.slug == "tree")
    assert rows[tree.code].name_zh == tree.name_zh
    assert rows[tree.code].owner_department == "landscaping"

    rows[tree.code].name_en = "Shrub"
    db_session.flush()
    assert sync_component_classes(db_session) == 1
    assert rows[tree.code].name_en == tree.name_en
