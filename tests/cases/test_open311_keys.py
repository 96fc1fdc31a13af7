"""``citygrid open311 keys ...`` as an administrator types them, and the attribute
definitions of the catalogue as the loader checks them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from citygrid.cases.catalogue import CatalogueError, load_catalogue
from citygrid.cases.open311 import service
from citygrid.cases.open311.definitions import Datatype, category_attributes, parse_attributes
from citygrid.kit.db import unit_of_work
from citygrid.kit.errors import Forbidden
from tests.access.test_cli_auth import CliDatabase, cli_db  # noqa: F401 - the fixture

_KEY = re.compile(r"^\s+(o311_[A-Za-z0-9_-]{40,})$", re.M)


def _client_of(database: CliDatabase, api_key: str) -> service.Open311Client:
    with unit_of_work(database.url) as session:
        return service.authenticate(session, api_key=api_key, demo_mode=False)


def test_an_administrator_issues_lists_and_revokes_a_key(cli_db: CliDatabase) -> None:  # noqa: F811
    code, output = cli_db.run(
        "open311", "keys", "create", "City app (iOS)", "--department", "urban-management"
    )
    assert code == 0, output
    [api_key] = _KEY.findall(output)
    prefix = api_key[:13]
    client = _client_of(cli_db, api_key)
    assert client.actor.name == f"open311:{prefix}"
    assert client.actor.department == "urban-management"

    code, listing = cli_db.run("open311", "keys", "list")
    assert code == 0, listing
    assert prefix in listing and "City app (iOS)" in listing and "active" in listing
    assert api_key not in listing

    code, output = cli_db.run("open311", "keys", "revoke", prefix)
    assert code == 0, output
    code, listing = cli_db.run("open311", "keys", "list")
    assert "revoked" in listing
    with pytest.raises(Forbidden):
        _client_of(cli_db, api_key)


def test_a_key_for_an_unknown_department_or_an_unknown_prefix_is_refused(
    cli_db: CliDatabase,  # noqa: F811
) -> None:
    code, output = cli_db.run("open311", "keys", "create", "App", "--department", "space-agency")
    assert code == 2
    assert "department" in output
    code, output = cli_db.run("open311", "keys", "revoke", "o311_nothing")
    assert code == 2
    assert "prefix" in output
    code, listing = cli_db.run("open311", "keys", "list")
    assert "o311_" not in listing


# ----------------------------------------------------------------------------- definitions


def test_the_catalogue_s_attributes_load_and_name_real_categories() -> None:
    attributes = category_attributes()

    assert set(attributes) <= {category.code for category in load_catalogue()}
    cover = attributes["C0101"][0]
    assert (cover.code, cover.datatype, cover.required) == (
        "cover_state",
        Datatype.SINGLEVALUELIST,
        True,
    )


def _entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "category": "C0201",
        "code": "tiles_loose",
        "datatype": "singlevaluelist",
        "required": False,
        "description_zh": "松动吗？",
        "description_en": "Loose?",
        "values": [{"key": "yes", "name_zh": "是", "name_en": "Yes"}],
    }
    entry.update(overrides)
    return {key: value for key, value in entry.items() if value is not None}


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ([_entry(category="C9999")], "no category"),
        ([_entry(code="Tiles Loose")], "snake_case"),
        ([_entry(code="priority")], "priority"),
        ([_entry(datatype="colour")], "datatype"),
        ([_entry(required="yes")], "required"),
        ([_entry(values=None)], "needs values"),
        ([_entry(datatype="number")], "only for the list"),
        ([_entry(description_en="")], "description_en"),
        ([_entry(), _entry()], "twice"),
    ],
)
def test_a_broken_attribute_entry_is_refused_naming_it(
    entries: list[dict[str, Any]], words: str
) -> None:
    with pytest.raises(CatalogueError, match=re.escape(words)):
        parse_attributes(entries, {category.code: category for category in load_catalogue()})


def test_an_open311_client_may_file_and_nothing_more(db_session: Any) -> None:
    from citygrid.cases import service as cases

    client = service.authenticate(db_session, api_key="citygrid-demo", demo_mode=True)

    # It files (as a resident would), but covers no grid and takes no step of the loop.
    assert client.actor.role in cases.INTAKE_ROLES
    assert client.actor.scopes == ()
    assert not cases.covers(client.actor, "440104001001002")
    assert all(
        client.actor.role not in transition.roles for transition in cases.TRANSITIONS.values()
    )
