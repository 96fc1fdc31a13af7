"""The catalogue: who the member departments are, what each holds and promises, and which
life events each may publish; checked against the access policy and the event schemas."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from citygrid.access.policy import default_policy
from citygrid.cli import app as cli
from citygrid.exchange import service
from citygrid.exchange.catalogue import (
    CATALOGUE_PATH,
    CatalogueError,
    default_catalogue,
    parse_catalogue,
)
from citygrid.exchange.events import EVENT_MODELS
from citygrid.exchange.schemas import ROW_MODELS
from citygrid.kit import i18n
from citygrid.kit.db import dispose_engines

runner = CliRunner()

FOUNDING = {
    "public-security",
    "family-planning",
    "rental-housing",
    "civil-affairs",
    "social-security",
    "housing-construction",
    "water-affairs",
    "market-regulation",
}


def test_the_catalogue_lists_members_datasets_and_event_types(
    db_session: Session, client: TestClient
) -> None:
    response = client.get("/api/v1/exchange/catalogue", headers={"Accept-Language": "en"})

    assert response.status_code == 200
    body = response.json()
    members = {member["slug"]: member for member in body["members"]}
    assert set(members) == FOUNDING
    assert members["civil-affairs"]["name"] == "Civil Affairs Bureau"
    assert members["civil-affairs"]["datasets"] == ["subsistence_allowances"]
    assert members["public-security"]["event_types"] == [
        "birth",
        "death",
        "move_in",
        "move_out",
    ]
    datasets = {dataset["slug"]: dataset for dataset in body["datasets"]}
    assert {
        slug: (d["owner"], d["classification"], d["frequency"]) for slug, d in datasets.items()
    } == {
        "subsistence_allowances": ("civil-affairs", "conditional", "monthly"),
        "pensions": ("social-security", "conditional", "monthly"),
        "marital_statuses": ("family-planning", "conditional", "quarterly"),
        "tenancies": ("rental-housing", "shared", "weekly"),
        "criminal_records": ("public-security", "confidential", "daily"),
    }
    assert datasets["subsistence_allowances"]["field_classes"] == ["allowance"]
    assert {e["type"]: e["owner"] for e in body["event_types"]}["tenancy_ended"] == "rental-housing"


def test_the_catalogue_speaks_chinese_by_default(db_session: Session, client: TestClient) -> None:
    body = client.get("/api/v1/exchange/catalogue", headers={"Accept-Language": ""}).json()

    names = {member["slug"]: member["name"] for member in body["members"]}
    assert names["civil-affairs"] == "民政局"


def test_every_dataset_field_is_a_row_field_of_a_policy_class() -> None:
    catalogue = default_catalogue()
    policy = default_policy()

    assert set(catalogue.datasets) == set(ROW_MODELS)
    for slug, dataset in catalogue.datasets.items():
        row_fields = set(ROW_MODELS[slug].model_fields) - {"id_number"}
        assert {field.name for field in dataset.fields} == row_fields, slug
        for field in dataset.fields:
            assert policy.class_of_field[field.mask_as] == field.field_class
    assert set(catalogue.events) == set(EVENT_MODELS)


def test_the_migration_seeded_the_catalogue_s_members(db_session: Session) -> None:
    members = {member.slug: member for member in service.list_members(db_session)}

    for spec in default_catalogue().members:
        member = members[spec.slug]
        assert (member.name_zh, member.name_en, member.contact) == (
            spec.name_zh,
            spec.name_en,
            spec.contact,
        )
    assert service.sync_members(db_session) == 0


def _document() -> dict[str, Any]:
    with CATALOGUE_PATH.open("rb") as catalogue_file:
        return tomllib.load(catalogue_file)


@pytest.mark.parametrize(
    ("spoil", "key"),
    [
        (lambda d: d["datasets"]["pensions"]["fields"][0].update(field_class="gossip"), "pensions"),
        (lambda d: d["datasets"]["pensions"].update(owner="astrology"), "datasets.pensions.owner"),
        (lambda d: d["datasets"]["pensions"].update(classification="secret"), "classification"),
        (lambda d: d["datasets"]["pensions"].update(frequency="hourly"), "frequency"),
        (lambda d: d["events"].pop("death"), "death"),
        (lambda d: d["events"].update(wedding={"owner": "family-planning"}), "events.wedding"),
        (
            lambda d: d["datasets"]["tenancies"]["fields"][0].update(mask_as="pension_amount"),
            "mask_as",
        ),
    ],
)
def test_a_spoiled_catalogue_is_refused_naming_the_key(spoil: Any, key: str) -> None:
    document = _document()
    spoil(document)

    with pytest.raises(CatalogueError, match=key):
        parse_catalogue(document)


# ============================================================================ CLI


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A migrated SQLite file; the environment the CLI changes is restored afterwards."""
    monkeypatch.setenv("CITYGRID_DATABASE_URL", "sqlite:///unused.sqlite3")
    monkeypatch.setenv("CITYGRID_DEFAULT_LOCALE", "en")
    path = tmp_path / "city.sqlite3"
    result = runner.invoke(cli, ["db", "upgrade", "--db", str(path)])
    assert result.exit_code == 0, result.output
    yield path
    dispose_engines()
    i18n.set_locale(i18n.DEFAULT_LOCALE)


def test_an_operator_adds_a_member_department(database: Path) -> None:
    added = runner.invoke(
        cli,
        [
            "exchange",
            "members",
            "add",
            "education",
            "--name-zh",
            "教育局",
            "--name-en",
            "Education Bureau",
            "--contact",
            "data@jyj.example.gov.cn",
            "--db",
            str(database),
        ],
    )
    again = runner.invoke(
        cli,
        ["exchange", "members", "add", "education", "--name-zh", "教育局", "--name-en", "Edu"]
        + ["--db", str(database)],
    )
    bad = runner.invoke(
        cli,
        ["exchange", "members", "add", "Bad Slug", "--name-zh", "坏", "--name-en", "Bad"]
        + ["--db", str(database)],
    )
    listed = runner.invoke(cli, ["exchange", "members", "list", "--db", str(database)])
    synced = runner.invoke(cli, ["exchange", "members", "sync", "--db", str(database)])

    assert added.exit_code == 0, added.output
    assert again.exit_code == 2 and "already a member" in again.output
    assert bad.exit_code == 2 and "slug" in bad.output
    slugs = [line.split("\t")[0] for line in listed.output.splitlines()]
    assert slugs == sorted(FOUNDING | {"education"})
    assert "0 members added or updated" in synced.output


def test_the_outbox_can_be_watched_and_drained_by_hand(database: Path) -> None:
    status = runner.invoke(cli, ["exchange", "outbox", "--db", str(database)])
    drained = runner.invoke(cli, ["exchange", "deliver", "--db", str(database)])

    assert status.exit_code == 0 and "pending\t0" in status.output
    assert drained.exit_code == 0 and "claimed 0" in drained.output


def test_the_openapi_document_describes_every_event_type(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    body = spec["paths"]["/api/v1/exchange/events"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    types = {variant["properties"]["type"]["const"] for variant in schema["oneOf"]}
    assert types == set(EVENT_MODELS)
