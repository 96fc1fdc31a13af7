"""The catalogue of case categories: the file loads, aligns with the registry's components,
and a broken file is refused with the entry named."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citygrid.cases.catalogue import (
    CATALOGUE_PATH,
    CatalogueError,
    WorkingDuration,
    load_catalogue,
    parse_catalogue,
)
from citygrid.cases.models import CaseKind, Priority
from citygrid.registry.catalogue import load_component_classes
from citygrid.registry.schemas import DEPARTMENT_SLUGS


def document() -> dict[str, Any]:
    with CATALOGUE_PATH.open("rb") as catalogue_file:
        return tomllib.load(catalogue_file)


def test_the_catalogue_file_loads_with_components_and_events() -> None:
    catalogue = load_catalogue()

    kinds = [category.kind for category in catalogue]
    assert 40 <= len(catalogue) <= 50
    assert kinds.count(CaseKind.COMPONENT) == len(load_component_classes())
    assert kinds.count(CaseKind.EVENT) >= 15
    for category in catalogue:
        assert category.code[0] == {"component": "C", "event": "E"}[category.kind]
        assert category.code[1:] == category.major_code + category.minor_code
        assert category.name_zh and category.name_en
        assert category.register_zh and category.register_en
        assert category.close_zh and category.close_en
        assert category.department in DEPARTMENT_SLUGS
        assert all(category.deadline(priority).hours > 0 for priority in Priority)
        assert category.duplicate_radius_m > 0 and category.duplicate_window_h > 0


def test_components_are_the_registry_s_classes() -> None:
    catalogue = load_catalogue()

    for item in load_component_classes():
        category = catalogue.get("C" + item.code)
        assert category is not None, item.code
        assert (category.slug, category.name_zh, category.name_en) == (
            item.slug,
            item.name_zh,
            item.name_en,
        )
        assert category.major_name_en == item.major_name_en


def test_the_seed_s_floor_tiles_and_the_usual_events_are_there() -> None:
    catalogue = load_catalogue()

    tiles = catalogue.get("C0201")
    assert tiles is not None
    assert tiles.slug == "floor_tiles"
    assert tiles.department == "housing-construction"
    assert tiles.deadline(Priority.HIGH) == WorkingDuration(2, "d")
    assert tiles.deadline(Priority.URGENT) == WorkingDuration(4, "h")
    slugs = {category.slug for category in catalogue}
    assert {
        "manhole_cover",
        "street_lamp",
        "illegal_parking",
        "street_vending",
        "garbage_accumulation",
        "illegal_small_ads",
        "construction_noise",
        "water_leak",
    } <= slugs
    majors = {c.major_code: c.major_name_en for c in catalogue if c.kind is CaseKind.EVENT}
    assert majors["02"] == "Advertising"
    assert majors["05"] == "Emergencies"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["events"].append(copy.deepcopy(d["events"][0])), "appears twice"),
        (lambda d: d["events"][0].update(department="ministry-of-magic"), "unknown department"),
        (lambda d: d["events"][0]["deadline"].update(urgent="0h"), "deadline.urgent"),
        (lambda d: d["events"][0]["deadline"].update(high="-2d"), "deadline.high"),
        (lambda d: d["events"][0]["deadline"].update(normal="3 weeks"), "deadline.normal"),
        (lambda d: d["events"][0]["deadline"].pop("normal"), "deadline.normal is missing"),
        (lambda d: d["events"][0]["deadline"].update(urgent="5d"), "must not shrink"),
        (lambda d: d["events"][0].update(duplicate_radius_m=0), "duplicate_radius_m"),
        (lambda d: d["events"][0].update(code="9901"), "major 99"),
        (lambda d: d["events"][0].pop("register_zh"), "register_zh"),
        (lambda d: d["components"].pop(0), "registry classes without a case entry"),
        (lambda d: d["components"][0].update(code="0999"), "not a class of the registry"),
        (lambda d: d.update(version=0), "version"),
    ],
)
def test_a_broken_catalogue_is_refused_naming_the_problem(change: Any, message: str) -> None:
    broken = document()
    change(broken)

    with pytest.raises(CatalogueError, match=message):
        parse_catalogue(broken, load_component_classes())


def test_a_component_may_name_its_own_department() -> None:
    changed = document()
    changed["components"][0]["department"] = "urban-management"

    catalogue = parse_catalogue(changed, load_component_classes())

    code = "C" + changed["components"][0]["code"]
    category = catalogue.get(code)
    assert category is not None and category.department == "urban-management"


def test_the_api_lists_the_catalogue_in_the_user_s_language(client: TestClient) -> None:
    english = client.get("/api/v1/cases/categories", headers={"Accept-Language": "en"})
    chinese = client.get("/api/v1/cases/categories", headers={"Accept-Language": "zh-CN"})

    assert english.status_code == chinese.status_code == 200
    tiles_en = next(item for item in english.json()["items"] if item["code"] == "C0201")
    tiles_zh = next(item for item in chinese.json()["items"] if item["code"] == "C0201")
    assert tiles_en["name"] == "Floor tiles"
    assert tiles_zh["name"] == "地面砖"
    assert tiles_en["major_name"] == "Roads and traffic"
    assert tiles_en["register_criterion"].startswith("Road or pavement tiles")
    assert tiles_zh["close_criterion"].startswith("铺装平整")
    assert tiles_en["department"] == "housing-construction"
    assert tiles_en["deadlines"]["high"] == {"amount": 2, "unit": "d"}
    assert len(english.json()["items"]) == len(load_catalogue())
