"""The gateway's notifications: who may be told what of a person (a department's system told
of a life event or a changed record), each shown as its grant says, rows kept inside its
territory, and one "told" access-log entry per recipient in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.access import gateway
from citygrid.access.policy import PolicyError
from citygrid.kit.actor import Actor
from citygrid.registry.models import Person
from tests.access.gateway_factories import (  # noqa: F401 - registry_fields_only is a fixture
    GRID,
    OTHER_GRID,
    World,
    entries,
    populate,
    registry_fields_only,
)

NOTIFY = "life-event-notification"
SUBJECT = ("name", "id_number", "status")

pytestmark = pytest.mark.usefixtures("registry_fields_only")


def _system(name: str, department: str, *scopes: str) -> Actor:
    return Actor(
        name=name,
        role="department_officer",
        department=department,
        scopes=scopes or ("440104",),
        kind="client",
    )


POLICE = _system("ps-hukou-system", "public-security")
ALLOWANCES = _system("ca-dibao-system", "civil-affairs")
RENTALS = _system("rental-registry", "rental-housing", "440104001")
FAMILY_PLANNING = _system("fp-marriage-system", "family-planning")
OTHER_STREET = _system("ca-street-2", "civil-affairs", OTHER_GRID[:9])


@pytest.fixture
def world(db_session: Session) -> World:
    return populate(db_session)


def _person_id(session: Session, world: World, name: str) -> int:
    statement = select(Person.id).where(Person.ref == world.refs[name])
    return int(session.execute(statement).scalar_one())


def _recipients(*actors: Actor) -> list[gateway.Recipient]:
    return [gateway.Recipient(actor, {"channel": "test", "to": actor.name}) for actor in actors]


DEATH_FACTS = (
    gateway.Fact("died_on", "status", "2026-03-14"),
    gateway.Fact("was_head", "relation_to_head", True),
    gateway.Fact("unit_ids", "address", [7, 8]),
    gateway.Fact("grid_codes", None, [GRID]),
)


def test_each_recipient_is_told_what_its_grant_shows_and_each_telling_is_logged(
    db_session: Session, world: World
) -> None:
    police, allowances, family, elsewhere = gateway.notification_views(
        db_session,
        recipients=_recipients(POLICE, ALLOWANCES, FAMILY_PLANNING, OTHER_STREET),
        purpose=NOTIFY,
        person_id=_person_id(db_session, world, "张三丰"),
        subject_fields=SUBJECT,
        gate="status",
        facts=DEATH_FACTS,
    )

    assert police is not None and allowances is not None
    assert police.subject == {
        "ref": world.refs["张三丰"],
        "grid_code": GRID,
        "name": "张三丰",
        "id_number": world.id_numbers["张三丰"],
        "status": "alive",
    }
    assert police.facts == {
        "died_on": "2026-03-14",
        "was_head": True,
        "unit_ids": [7, 8],
        "grid_codes": [GRID],
    }
    assert allowances.subject["name"] == "张**"
    assert allowances.subject["id_number"] == world.id_numbers["张三丰"][:6] + "*" * 12
    assert allowances.facts["unit_ids"] == ["***", "***"]  # addresses: redacted
    assert allowances.masked == ("name", "id_number", "unit_ids")
    assert family is None  # family planning holds no statutory purpose to be told for
    assert elsewhere is None  # the person lives outside its street
    told = entries(db_session, action="told")
    assert [(entry.actor, entry.department) for entry in told] == [
        (POLICE.name, "public-security"),
        (ALLOWANCES.name, "civil-affairs"),
    ]
    for entry, shown in zip(told, (police, allowances), strict=True):
        assert entry.subjects == [world.refs["张三丰"]]
        assert entry.purpose == NOTIFY
        assert entry.fields == list(shown.classes)
        assert entry.scope == ["440104"]
        assert entry.detail["legal_basis"] == "statutory"
        assert entry.detail["to"] == entry.actor
    assert told[0].fields == ["identity", "household_registration", "contact"]


def test_a_move_tells_the_territory_it_left(db_session: Session, world: World) -> None:
    person_id = _person_id(db_session, world, "张三丰")  # lives in GRID, street 440104001

    def told(places: Sequence[str]) -> gateway.Notification | None:
        [shown] = gateway.notification_views(
            db_session,
            recipients=_recipients(OTHER_STREET),
            purpose=NOTIFY,
            person_id=person_id,
            subject_fields=SUBJECT,
            gate="address",
            places=places,
        )
        return shown

    assert told(()) is None
    assert told([OTHER_GRID]) is not None  # the move left (or reached) its street
    assert len(entries(db_session, action="told")) == 1


def test_a_gate_the_recipient_cannot_see_tells_it_nothing(
    db_session: Session, world: World
) -> None:
    # Water affairs (no grant of its own) sees no addresses: it never hears of a move.
    water = _system("water-billing", "water-affairs")

    [shown] = gateway.notification_views(
        db_session,
        recipients=_recipients(water),
        purpose=NOTIFY,
        person_id=_person_id(db_session, world, "张三丰"),
        subject_fields=SUBJECT,
        gate="address",
    )

    assert shown is None
    assert entries(db_session, action="told") == []


class _Rows:
    """A dataset's rows kept in the test: one in the seed grid, one in another street."""

    fields = (("status", "tenancy_status"), ("flag", "criminal_record"))

    def __init__(self) -> None:
        self.asked: list[tuple[str, ...]] = []

    def load(
        self, session: Session, *, person_id: int, scopes: Sequence[str]
    ) -> list[gateway.PlacedRecord]:
        self.asked.append(tuple(scopes))
        return [
            gateway.PlacedRecord(GRID, {"status": "active", "flag": True}),
            gateway.PlacedRecord(OTHER_GRID, {"status": "ended", "flag": False}),
        ]


def test_rows_outside_the_scope_or_hidden_from_the_recipient_are_dropped(
    db_session: Session, world: World
) -> None:
    rows = _Rows()

    rentals, allowances = gateway.notification_views(
        db_session,
        recipients=_recipients(RENTALS, ALLOWANCES),
        purpose=NOTIFY,
        person_id=_person_id(db_session, world, "张三丰"),
        subject_fields=SUBJECT,
        records=rows,
    )

    assert rentals is not None
    assert rentals.records == [{"status": "active"}]  # its street's row; never the flag
    assert allowances is None  # sees no field of these rows: told nothing
    assert rows.asked == [("440104001", "440104")]  # read once, for everyone in scope
    [entry] = entries(db_session, action="told")
    assert (entry.actor, entry.fields, entry.detail["records"]) == (
        RENTALS.name,
        ["identity", "tenancy"],
        1,
    )


def test_a_telling_rolled_back_leaves_no_entry(db_session: Session, world: World) -> None:
    person_id = _person_id(db_session, world, "张三丰")
    savepoint = db_session.begin_nested()
    [shown] = gateway.notification_views(
        db_session,
        recipients=_recipients(POLICE),
        purpose=NOTIFY,
        person_id=person_id,
        subject_fields=SUBJECT,
    )
    assert shown is not None
    assert len(entries(db_session, action="told")) == 1

    savepoint.rollback()

    assert entries(db_session, action="told") == []


def test_nobody_is_told_of_a_person_who_does_not_exist(db_session: Session, world: World) -> None:
    answer = gateway.notification_views(
        db_session,
        recipients=_recipients(POLICE),
        purpose=NOTIFY,
        person_id=10**9,
        subject_fields=SUBJECT,
    )

    assert answer == [None]
    assert entries(db_session, action="told") == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"purpose": "gossip"}, "purposes.gossip"),
        ({"subject_fields": ("allowance_amount",)}, "allowance_amount"),
    ],
)
def test_a_call_outside_the_policy_is_a_programming_error(
    db_session: Session, world: World, change: dict[str, Any], problem: str
) -> None:
    call: dict[str, Any] = {
        "recipients": _recipients(POLICE),
        "purpose": NOTIFY,
        "person_id": _person_id(db_session, world, "张三丰"),
        "subject_fields": SUBJECT,
    } | change

    with pytest.raises(PolicyError, match=problem):
        gateway.notification_views(db_session, **call)

    assert entries(db_session, action="told") == []


def test_may_be_told_asks_the_policy_alone() -> None:
    assert gateway.may_be_told(ALLOWANCES, purpose=NOTIFY, fields=["allowance_status"])
    assert not gateway.may_be_told(ALLOWANCES, purpose=NOTIFY, fields=["pension_status"])
    assert not gateway.may_be_told(FAMILY_PLANNING, purpose=NOTIFY, fields=["marital_status"])
