"""The consent store: grant, revoke, what counts as active, the log of every change, and the
``citygrid consent`` commands an operator types."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from citygrid.access import consent
from citygrid.access.models import Consent
from citygrid.cli import app as cli
from citygrid.kit import i18n
from citygrid.kit.clock import local_today
from citygrid.kit.db import dispose_engines, unit_of_work
from citygrid.kit.errors import Conflict, NotFound, ValidationFailed
from citygrid.kit.migrate import upgrade
from tests.access.gateway_factories import (  # noqa: F401 - registry_fields_only is a fixture
    CLERK,
    GRID_WORKER,
    World,
    entries,
    populate,
    registry_fields_only,
)

TODAY = local_today()


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    i18n.set_locale("en")
    yield
    i18n.set_locale(i18n.DEFAULT_LOCALE)


pytestmark = pytest.mark.usefixtures("registry_fields_only")


@pytest.fixture
def world(db_session: Session) -> World:
    return populate(db_session)


def _grant(session: Session, world: World, **overrides: Any) -> consent.ConsentRead:
    values: dict[str, Any] = {
        "person_ref": world.refs["张三丰"],
        "requester_department": "civil-affairs",
        "purpose": "allowance-review",
        "field_classes": ["contact", "identity"],
        "valid_from": TODAY,
        "valid_until": TODAY + timedelta(days=90),
        "obtained_via": "paper",
    }
    return consent.grant_consent(session, CLERK, **(values | overrides))


def test_a_granted_consent_is_active_and_logged(db_session: Session, world: World) -> None:
    granted = _grant(db_session, world)

    assert granted.status == consent.ACTIVE
    assert granted.field_classes == ("identity", "contact")  # in the policy's order
    active = consent.active_consent(
        db_session,
        person_ref=world.refs["张三丰"],
        requester_department="civil-affairs",
        purpose="allowance-review",
    )
    assert active is not None and active.id == granted.id
    (entry,) = entries(db_session, action="consent_granted")
    assert entry.subjects == [world.refs["张三丰"]]
    assert entry.fields == ["identity", "contact"]
    assert entry.purpose == "allowance-review" and entry.outcome == "allowed"
    assert entry.detail["consent_id"] == granted.id
    assert entry.detail["requester_department"] == "civil-affairs"


def test_a_revoked_consent_is_no_longer_active_and_the_revocation_is_logged(
    db_session: Session, world: World
) -> None:
    granted = _grant(db_session, world)

    revoked = consent.revoke_consent(db_session, CLERK, consent_id=granted.id)

    assert revoked.status == consent.REVOKED and revoked.revoked_at is not None
    assert (
        consent.active_consent(
            db_session,
            person_ref=world.refs["张三丰"],
            requester_department="civil-affairs",
            purpose="allowance-review",
        )
        is None
    )
    (entry,) = entries(db_session, action="consent_revoked")
    assert entry.detail["consent_id"] == granted.id
    with pytest.raises(Conflict):
        consent.revoke_consent(db_session, CLERK, consent_id=granted.id)
    with pytest.raises(NotFound):
        consent.revoke_consent(db_session, CLERK, consent_id=999_999)


def test_a_consent_past_its_last_day_is_expired_whatever_its_status_says(
    db_session: Session, world: World
) -> None:
    granted = _grant(db_session, world, valid_until=TODAY + timedelta(days=10))
    arguments = {
        "person_ref": world.refs["张三丰"],
        "requester_department": "civil-affairs",
        "purpose": "allowance-review",
    }

    assert consent.active_consent(db_session, **arguments, on=TODAY + timedelta(days=10))
    assert consent.active_consent(db_session, **arguments, on=TODAY + timedelta(days=11)) is None
    assert consent.active_consent(db_session, **arguments, on=TODAY - timedelta(days=1)) is None
    (listed,) = consent.consents_of_person(
        db_session, CLERK, person_ref=world.refs["张三丰"], on=TODAY + timedelta(days=11)
    )
    assert listed.status == consent.EXPIRED

    # A status column that says "expired" is believed too.
    db_session.execute(update(Consent).where(Consent.id == granted.id).values(status="expired"))
    assert consent.active_consent(db_session, **arguments) is None


def test_a_persons_consents_are_listed_newest_first_with_their_state(
    db_session: Session, world: World
) -> None:
    old = _grant(db_session, world)
    consent.revoke_consent(db_session, CLERK, consent_id=old.id)
    future = _grant(db_session, world, valid_from=TODAY + timedelta(days=5))
    new = _grant(
        db_session,
        world,
        purpose="family-planning-service",
        requester_department=("family-planning"),
    )

    listed = consent.consents_of_person(db_session, CLERK, person_ref=world.refs["张三丰"])

    assert [(item.id, item.status) for item in listed] == [
        (new.id, consent.ACTIVE),
        (future.id, consent.NOT_YET_VALID),
        (old.id, consent.REVOKED),
    ]
    assert consent.consents_of_person(db_session, CLERK, person_ref=world.refs["李秀英"]) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"purpose": "curiosity"}, "purpose"),
        ({"purpose": "patrol-update"}, "purpose"),  # statutory: no consent to give
        ({"field_classes": []}, "field_classes"),
        ({"field_classes": ["identity", "shoe_size"]}, "field_classes"),
        ({"valid_until": TODAY - timedelta(days=1)}, "valid_until"),
        ({"obtained_via": "telepathy"}, "obtained_via"),
        ({"requester_department": "fortune-tellers"}, "requester_department"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(
    db_session: Session, world: World, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        _grant(db_session, world, **overrides)
    assert [detail["field"] for detail in caught.value.details] == [field]
    assert db_session.query(Consent).count() == 0
    assert entries(db_session, action="consent_granted") == []


def test_an_unknown_person_is_not_found(db_session: Session, world: World) -> None:
    with pytest.raises(NotFound):
        _grant(db_session, world, person_ref="nobodyxxxxxxxxxx")


def test_someone_with_a_scope_may_only_record_consents_inside_it(
    db_session: Session, world: World
) -> None:
    inside = consent.grant_consent(
        db_session,
        GRID_WORKER,
        person_ref=world.refs["张三丰"],
        requester_department="civil-affairs",
        purpose="allowance-review",
        field_classes=["identity"],
        valid_from=TODAY,
        valid_until=None,
        obtained_via="paper",
    )
    assert inside.valid_until is None
    with pytest.raises(NotFound):
        consent.consents_of_person(db_session, GRID_WORKER, person_ref=world.refs["赵六"])


# ----------------------------------------------------------------------------- CLI

runner = CliRunner()


@pytest.fixture
def city_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, World]]:
    """A migrated SQLite file with the gateway's world committed (the CLI commits for real)."""
    monkeypatch.setenv("CITYGRID_DATABASE_URL", "sqlite:///unused.sqlite3")
    monkeypatch.setenv("CITYGRID_DEFAULT_LOCALE", "en")
    path = tmp_path / "city.sqlite3"
    upgrade(f"sqlite:///{path}")
    with unit_of_work(f"sqlite:///{path}") as session:
        world = populate(session)
    yield path, world
    dispose_engines()
    i18n.set_locale(i18n.DEFAULT_LOCALE)


def _cli(*args: str) -> Any:
    return runner.invoke(cli, ["consent", *args])


def test_an_operator_grants_lists_and_revokes_from_the_command_line(
    city_file: tuple[Path, World],
) -> None:
    path, world = city_file
    ref = world.refs["张三丰"]
    granted = _cli(
        "grant", "--person", ref, "--department", "civil-affairs",
        "--purpose", "allowance-review", "--classes", "identity, contact",
        "--until", (TODAY + timedelta(days=30)).isoformat(), "--db", str(path),
    )  # fmt: skip
    assert granted.exit_code == 0, granted.output
    consent_id = granted.output.split("granted consent ", 1)[1].split()[0]

    listed = _cli("list", "--person", ref, "--db", str(path))
    revoked = _cli("revoke", consent_id, "--db", str(path))
    again = _cli("revoke", consent_id, "--db", str(path))
    after = _cli("list", "--person", ref, "--db", str(path))

    assert listed.exit_code == 0 and f"{consent_id}\tactive\tcivil-affairs" in listed.output
    assert "identity,contact" in listed.output
    assert revoked.exit_code == 0 and f"revoked consent {consent_id}" in revoked.output
    assert again.exit_code == 1 and "already revoked" in again.output
    assert f"{consent_id}\trevoked" in after.output
    with unit_of_work(f"sqlite:///{path}") as session:
        actions = [entry.action for entry in entries(session)]
        operators = {entry.actor for entry in entries(session)}
    assert actions == ["consent_granted", "consent_revoked"]
    assert all(name.startswith("cli:") for name in operators)


def test_the_command_line_refuses_bad_input_with_the_reason(
    city_file: tuple[Path, World],
) -> None:
    path, world = city_file
    unknown = _cli(
        "grant", "--person", world.refs["张三丰"], "--department", "civil-affairs",
        "--purpose", "patrol-update", "--classes", "identity", "--db", str(path),
    )  # fmt: skip
    bad_date = _cli(
        "grant", "--person", world.refs["张三丰"], "--department", "civil-affairs",
        "--purpose", "allowance-review", "--classes", "identity", "--from", "yesterday",
        "--db", str(path),
    )  # fmt: skip
    nobody = _cli("list", "--person", "nobodyxxxxxxxxxx", "--db", str(path))

    assert unknown.exit_code == 1 and "statutory" in unknown.output
    assert bad_date.exit_code == 2 and "--from" in bad_date.output
    assert nobody.exit_code == 1 and "No such person" in nobody.output
