"""Publishing life events in batches: one request, one transaction, one answer per event;
a refused event changes nothing and does not stop the others; replays answer the same."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.audit.models import AuditEntry
from citygrid.exchange import outbox
from citygrid.exchange.models import LifeEventRecord, MaritalRecord, OutboxEntry, TenancyStatus
from citygrid.kit.actor import Actor
from citygrid.registry.idnumber import make_id_number
from citygrid.registry.models import LifeStatus, Person, RegistryChange
from tests.exchange.story import (
    FAMILY_PLANNING,
    GRID,
    OTHER_GRID,
    PUBLIC_SECURITY,
    RENTAL_HOUSING,
    event,
    family,
    flat,
    residences,
    snapshot,
    tasks,
    tenancies,
)

BATCH = "/api/v1/exchange/events/batch"


def _count(session: Session, model: type) -> int:
    session.flush()
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_a_mixed_batch_answers_each_event_and_applies_only_the_good_ones(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    home = family(city)
    elsewhere = flat(city, OTHER_GRID, "808")
    stranger = make_id_number("440104", date(1960, 2, 2), 777)
    act_as(PUBLIC_SECURITY)
    death = event("death", home.head)
    move = event(
        "move_in", home.spouse, unit_id=elsewhere.id, occurred_at="2026-04-01T10:00:00+08:00"
    )
    batch = [
        death,
        event("death", home.spouse) | {"cause": "old age"},  # malformed: an unknown field
        event("death", stranger),  # nobody with this ID number
        event("marriage_status_changed", home.spouse, marital_status="widowed"),  # not ours
        move,
        event("move_in", home.spouse, unit_id=999_999),  # no such flat
        death,  # the same key again, earlier in this very batch
        death | {"occurred_at": "2026-03-15T09:30:00+08:00"},  # same key, other content
    ]

    response = client.post(BATCH, json={"events": batch})

    assert response.status_code == 200
    answer = response.json()
    statuses = [result["status"] for result in answer["results"]]
    assert statuses == [202, 422, 422, 403, 202, 422, 202, 409]
    assert [result["index"] for result in answer["results"]] == list(range(len(batch)))
    assert (answer["accepted"], answer["replayed"], answer["refused"]) == (2, 1, 5)
    results = answer["results"]
    assert results[0]["body"]["applied"] is True
    assert results[6] == {**results[0], "index": 6, "replayed": True}
    assert [d["field"] for d in results[1]["body"]["error"]["details"]] == ["cause"]
    assert results[2]["body"]["error"]["details"] == [
        {"field": "id_number", "reason": "no person with this ID number is registered"}
    ]
    assert results[5]["body"]["error"]["details"][0]["field"] == "unit_id"
    assert results[7]["body"]["error"]["details"][0]["field"] == "source_event_id"
    assert stranger not in response.text
    assert home.spouse.id_number not in response.text

    city.expire_all()
    assert home.head.status is LifeStatus.DECEASED
    assert home.spouse.status is LifeStatus.ALIVE
    assert home.spouse.grid_code == OTHER_GRID
    assert [r.unit_id for r in residences(city, home.spouse) if r.until is None] == [elsewhere.id]
    assert _count(city, LifeEventRecord) == 2
    assert _count(city, OutboxEntry) == 2
    deliver()
    assert [task.kind for task in tasks(city, home.head)].count("verify_death") == 1


def test_the_same_batch_again_answers_the_same_and_changes_nothing(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    home = family(city)
    elsewhere = flat(city, OTHER_GRID, "909")
    act_as(PUBLIC_SECURITY)
    batch = [
        event("death", home.head),
        event("death", make_id_number("440104", date(1961, 3, 3), 555)),
        event("move_in", home.spouse, unit_id=elsewhere.id),
    ]
    first = client.post(BATCH, json={"events": batch}).json()
    deliver()
    after_first = snapshot(city)

    second = client.post(BATCH, json={"events": batch}).json()
    deliver()

    assert snapshot(city) == after_first
    assert [r["status"] for r in second["results"]] == [202, 422, 202]
    assert [r["replayed"] for r in second["results"]] == [True, False, True]
    assert [r["body"] for r in second["results"]] == [r["body"] for r in first["results"]]
    assert (second["accepted"], second["replayed"], second["refused"]) == (0, 2, 1)
    assert [task.kind for task in tasks(city, home.head)].count("verify_death") == 1


def test_an_event_refused_after_its_first_writes_leaves_nothing_behind(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)
    before = snapshot(city)
    # The key is claimed and the person locked before the date is found impossible.
    too_early = event("death", home.head, occurred_at="1901-01-01T00:00:00+08:00")
    then_fine = event("death", home.spouse)

    answer = client.post(BATCH, json={"events": [too_early, then_fine]}).json()

    assert [r["status"] for r in answer["results"]] == [422, 202]
    assert answer["results"][0]["body"]["error"]["details"][0]["field"] == "occurred_at"
    city.expire_all()
    assert home.head.status is LifeStatus.ALIVE
    assert home.spouse.status is LifeStatus.DECEASED
    assert _count(city, LifeEventRecord) == before["exchange_events"] + 1
    # The refused event's key is free: sent again, corrected, it applies.
    fixed = too_early | {"occurred_at": "2026-03-20T08:00:00+08:00"}
    again = client.post(BATCH, json={"events": [fixed]}).json()
    assert again["results"][0]["status"] == 202
    assert again["results"][0]["body"]["applied"] is True


def test_events_about_one_person_in_a_batch_apply_in_order(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    elsewhere = flat(city, GRID, "1201")
    act_as(PUBLIC_SECURITY)
    later = event("move_in", home.head, unit_id=elsewhere.id, occurred_at="2026-05-01T09:00:00Z")
    older = event("move_out", home.head, occurred_at="2026-04-01T09:00:00Z")

    answer = client.post(BATCH, json={"events": [later, older]}).json()

    assert [r["body"]["applied"] for r in answer["results"]] == [True, False]
    assert answer["results"][1]["body"]["reason"] == "superseded"
    assert [r.unit_id for r in residences(city, home.head) if r.until is None] == [elsewhere.id]


def test_a_batch_that_is_not_a_list_of_1_to_1000_events_is_refused_whole(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)
    before = snapshot(city)
    too_many = [event("death", home.head) for _ in range(1001)]

    for body in ({"events": []}, {"events": too_many}, {"events": "death"}, {"event": []}):
        response = client.post(BATCH, json=body)
        assert response.status_code == 422, body
        fields = [detail["field"] for detail in response.json()["error"]["details"]]
        assert any(field.startswith("event") for field in fields), fields
    assert snapshot(city) == before


def test_an_event_that_is_not_an_object_is_refused_alone(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)

    answer = client.post(BATCH, json={"events": ["death", event("death", home.head)]}).json()

    assert [r["status"] for r in answer["results"]] == [422, 202]
    assert answer["results"][0]["body"]["error"]["details"][0]["field"] == "event"


def test_a_caller_without_a_department_cannot_publish_a_batch(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    act_as(Actor(name="worker-0042", role="grid_worker", scopes=(GRID,)))
    before = snapshot(city)

    response = client.post(BATCH, json={"events": [event("death", home.head)]})

    assert response.status_code == 403
    assert snapshot(city) == before


def _writes_about(session: Session, person: Person) -> tuple[list[str], list[str]]:
    """The registry history of a person's row and the access-log actions naming them."""
    session.flush()
    history = session.scalars(
        select(RegistryChange.action)
        .where(RegistryChange.entity == "person", RegistryChange.entity_id == person.id)
        .order_by(RegistryChange.id)
    ).all()
    logged = [
        entry.action
        for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        if person.ref in entry.subjects
    ]
    return list(history), logged


def test_a_batch_keeps_the_history_and_the_access_log_of_every_write_it_made(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)
    head_before = _writes_about(city, home.head)
    spouse_before = _writes_about(city, home.spouse)
    refused = event("death", home.spouse, occurred_at="1901-01-01T00:00:00+08:00")

    answer = client.post(BATCH, json={"events": [event("death", home.head), refused]}).json()

    assert [r["status"] for r in answer["results"]] == [202, 422]
    history, logged = _writes_about(city, home.head)
    # Deceased, then out of the household: two updates, each with its access-log entry.
    assert history == [*head_before[0], "update", "update"]
    assert logged[len(head_before[1]) :].count("person_updated") == 2
    assert "residence_updated" in logged[len(head_before[1]) :]
    assert _writes_about(city, home.spouse) == spouse_before


def _residence_writes(session: Session, person: Person) -> tuple[list[str], list[str]]:
    """The history actions of the person's residences and the access-log actions about
    residences naming the person."""
    session.flush()
    ids = [residence.id for residence in residences(session, person)]
    history = session.scalars(
        select(RegistryChange.action)
        .where(RegistryChange.entity == "residence", RegistryChange.entity_id.in_(ids))
        .order_by(RegistryChange.id)
    ).all()
    logged = [
        entry.action
        for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        if person.ref in entry.subjects and entry.action.startswith("residence_")
    ]
    return list(history), logged


def test_a_person_moved_twice_in_one_batch_lives_where_the_last_move_took_them(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    first = flat(city, GRID, "1501")
    second = flat(city, OTHER_GRID, "1502")
    act_as(PUBLIC_SECURITY)
    history_before, logged_before = _residence_writes(city, home.head)
    moves = [
        event("move_in", home.head, unit_id=first.id, occurred_at="2026-04-01T09:00:00+08:00"),
        event("move_in", home.head, unit_id=second.id, occurred_at="2026-05-01T09:00:00+08:00"),
    ]

    answer = client.post(BATCH, json={"events": moves}).json()

    assert [r["body"]["applied"] for r in answer["results"]] == [True, True]
    city.expire_all()
    held = [(r.unit_id, r.until) for r in residences(city, home.head)]
    assert held == [
        (home.home.id, date(2026, 4, 1)),
        (first.id, date(2026, 5, 1)),
        (second.id, None),
    ]
    assert home.head.grid_code == OTHER_GRID
    assert home.head.household_id is None  # a household lies in its members' grid
    # Each residence written has its history row and its access-log entry.
    history, logged = _residence_writes(city, home.head)
    written = ["update", "create", "update", "create"]
    assert history == [*history_before, *written]
    assert logged == [*logged_before, *(f"residence_{a}d" for a in written)]


def test_later_events_of_a_batch_see_what_earlier_ones_did_to_marriages_and_tenancies(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    rented = flat(city, GRID, "1601")
    act_as(FAMILY_PLANNING)
    marriages = [
        event(
            "marriage_status_changed",
            home.spouse,
            marital_status="divorced",
            occurred_at="2026-04-01T09:00:00+08:00",
        ),
        event(
            "marriage_status_changed",
            home.spouse,
            marital_status="married",
            occurred_at="2026-05-01T09:00:00+08:00",
        ),
    ]
    answer = client.post(BATCH, json={"events": marriages}).json()
    assert [r["body"]["applied"] for r in answer["results"]] == [True, True]

    act_as(RENTAL_HOUSING)
    start = event(
        "tenancy_started", home.spouse, unit_id=rented.id, occurred_at="2026-04-02T09:00:00+08:00"
    )
    tenancy_events = [
        start,
        # The same tenancy again (another key): it is active already.
        start | {"source_event_id": start["source_event_id"] + "-again"},
        event(
            "tenancy_ended", home.spouse, unit_id=rented.id, occurred_at="2026-06-30T18:00:00+08:00"
        ),
    ]
    answer = client.post(BATCH, json={"events": tenancy_events}).json()

    assert [(r["body"]["applied"], r["body"]["reason"]) for r in answer["results"]] == [
        (True, None),
        (False, "no_change"),
        (True, None),
    ]
    city.expire_all()
    record = city.scalars(
        select(MaritalRecord).where(MaritalRecord.person_id == home.spouse.id)
    ).one()
    assert (record.marital_status, record.since) == ("married", date(2026, 5, 1))
    assert home.spouse.marital_status == "married"
    [tenancy] = [t for t in tenancies(city, home.spouse) if t.unit_id == rented.id]
    assert (tenancy.since, tenancy.until, tenancy.status) == (
        date(2026, 4, 2),
        date(2026, 6, 30),
        TenancyStatus.ENDED,
    )
