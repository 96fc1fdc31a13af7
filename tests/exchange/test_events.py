"""Life events: typed, published by their owner only, once per key, applied in the order
they happened; bad input gets a clear 4xx and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.exchange import outbox
from citygrid.kit.actor import Actor
from citygrid.registry.idnumber import make_id_number
from tests.exchange.story import (
    DIED_AT,
    FAMILY_PLANNING,
    GRID,
    OTHER_GRID,
    PUBLIC_SECURITY,
    RENTAL_HOUSING,
    WATER,
    event,
    family,
    flat,
    residences,
    resident,
    snapshot,
    tasks,
    tenancies,
)

EVENTS = "/api/v1/exchange/events"


# ============================================================================ idempotency


def test_the_same_publish_twice_answers_the_same_and_acts_once(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)
    death = event("death", home.head)

    first = client.post(EVENTS, json=death)
    after_first = snapshot(city)
    second = client.post(EVENTS, json=death)

    assert (second.status_code, second.json()) == (first.status_code, first.json())
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert snapshot(city) == after_first
    deliver()
    assert [task.kind for task in tasks(city, home.head)].count("verify_death") == 1


def test_a_key_used_again_for_another_event_is_refused(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)
    client.post(EVENTS, json=event("death", home.head, source_event_id="PS-1"))
    before = snapshot(city)

    response = client.post(EVENTS, json=event("death", home.spouse, source_event_id="PS-1"))

    assert response.status_code == 409
    assert response.json()["error"]["details"] == [
        {"field": "source_event_id", "reason": "already used for a different event"}
    ]
    assert snapshot(city) == before


def test_keys_are_per_department(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)
    death = client.post(EVENTS, json=event("death", home.head, source_event_id="42"))
    act_as(FAMILY_PLANNING)
    marriage = client.post(
        EVENTS,
        json=event(
            "marriage_status_changed",
            home.spouse,
            source_event_id="42",
            marital_status="widowed",
            occurred_at="2026-03-15T10:00:00+08:00",
        ),
    )

    assert death.status_code == marriage.status_code == 202
    assert death.json()["event_id"] != marriage.json()["event_id"]


# ============================================================================ wrong input


def test_only_the_owning_department_publishes_a_type(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    before = snapshot(city)
    act_as(RENTAL_HOUSING)

    response = client.post(EVENTS, json=event("death", home.head))

    assert response.status_code == 403
    assert "death" in response.json()["error"]["message"]
    assert snapshot(city) == before


def test_a_caller_without_a_department_cannot_publish(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    act_as(Actor(name="worker-0042", role="grid_worker", scopes=(GRID,)))

    assert client.post(EVENTS, json=event("death", home.head)).status_code == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e | {"type": "abduction"}, "type"),
        (lambda e: {k: v for k, v in e.items() if k != "type"}, "type"),
        (lambda e: e | {"occurred_at": "2026-03-14T09:30:00"}, "occurred_at"),
        (lambda e: e | {"occurred_at": "2099-01-01T00:00:00+08:00"}, "occurred_at"),
        (lambda e: e | {"occurred_at": "yesterday"}, "occurred_at"),
        (lambda e: {k: v for k, v in e.items() if k != "source_event_id"}, "source_event_id"),
        (lambda e: e | {"source_event_id": ""}, "source_event_id"),
        (lambda e: e | {"source_event_id": "has space"}, "source_event_id"),
        (lambda e: e | {"id_number": e["id_number"][:17] + "0"}, "id_number"),
        (lambda e: e | {"cause": "old age"}, "cause"),
    ],
)
def test_a_malformed_event_names_the_field_and_changes_nothing(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    change: Callable[[dict], dict],
    field: str,
) -> None:
    home = family(city)
    before = snapshot(city)
    act_as(PUBLIC_SECURITY)
    bad = change(event("death", home.head))
    if field == "id_number" and bad["id_number"] == home.head.id_number:
        bad["id_number"] = home.head.id_number[:17] + "1"

    response = client.post(EVENTS, json=bad)

    assert response.status_code == 422
    assert field in [detail["field"] for detail in response.json()["error"]["details"]]
    assert home.head.id_number not in response.text
    assert snapshot(city) == before


def test_a_move_needs_a_unit_number(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)

    response = client.post(EVENTS, json=event("move_in", home.head, unit_id="the blue house"))

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "unit_id"


def test_an_unknown_person_is_named_by_field_not_by_number(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    family(city)
    before = snapshot(city)
    stranger = make_id_number("440104", date(1960, 2, 2), 777)
    act_as(PUBLIC_SECURITY)

    response = client.post(EVENTS, json=event("death", stranger))

    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {"field": "id_number", "reason": "no person with this ID number is registered"}
    ]
    assert stranger not in response.text
    assert snapshot(city) == before


def test_a_move_into_an_unknown_flat_is_refused(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    before = snapshot(city)
    act_as(PUBLIC_SECURITY)

    response = client.post(EVENTS, json=event("move_in", home.head, unit_id=999_999))

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "unit_id"
    assert snapshot(city) == before


# ============================================================================ each type


def test_a_birth_adds_the_child_to_the_parent_s_household(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    child_number = make_id_number("440104", date(2026, 3, 10), 24)  # even: a girl
    act_as(PUBLIC_SECURITY)

    response = client.post(
        EVENTS,
        json=event(
            "birth",
            child_number,
            occurred_at="2026-03-10T04:12:00+08:00",
            name="王小雨",
            ethnicity="汉族",
            parent_id_number=home.spouse.id_number,
        ),
    )

    assert response.status_code == 202
    from citygrid.registry import service as registry

    child = registry.person_by_ref(city, ref=response.json()["subject"])
    assert (child.household_id, child.relation_to_head) == (home.household.id, "child")
    assert (child.grid_code, child.sex.value, child.ethnicity) == (GRID, "F", "01")
    assert child.birth_date == date(2026, 3, 10)


def test_a_birth_is_on_the_day_its_id_number_says(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)
    child_number = make_id_number("440104", date(2026, 3, 10), 24)

    response = client.post(
        EVENTS,
        json=event(
            "birth",
            child_number,
            occurred_at="2026-03-11T10:00:00+08:00",
            name="王小雨",
            ethnicity="01",
            parent_id_number=home.head.id_number,
        ),
    )

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "occurred_at"


def test_a_birth_of_a_registered_person_conflicts(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    before = snapshot(city)
    act_as(PUBLIC_SECURITY)

    response = client.post(
        EVENTS,
        json=event(
            "birth",
            home.spouse.id_number,
            occurred_at=f"{home.spouse.birth_date.isoformat()}T08:00:00+08:00",
            name="王小雨",
            ethnicity="01",
            parent_id_number=home.head.id_number,
        ),
    )

    assert response.status_code == 409
    assert snapshot(city) == before


def test_a_birth_needs_a_registered_parent(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    family(city)
    act_as(PUBLIC_SECURITY)
    orphan_parent = make_id_number("440104", date(1990, 1, 1), 11)

    response = client.post(
        EVENTS,
        json=event(
            "birth",
            make_id_number("440104", date(2026, 3, 10), 24),
            occurred_at="2026-03-10T04:12:00+08:00",
            name="王小雨",
            ethnicity="01",
            parent_id_number=orphan_parent,
        ),
    )

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "parent_id_number"
    assert orphan_parent not in response.text


def test_a_marriage_change_updates_the_registry_and_family_planning_s_data(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city, marital_status="unmarried")
    act_as(FAMILY_PLANNING)

    response = client.post(
        EVENTS, json=event("marriage_status_changed", person, marital_status="married")
    )

    assert response.json()["applied"] is True
    city.refresh(person)
    assert person.marital_status.value == "married"
    from citygrid.exchange.repository import marital_record_of

    record = marital_record_of(city, person_id=person.id)
    assert record is not None
    assert (record.marital_status.value, record.since) == ("married", date(2026, 3, 14))


def test_a_move_in_to_another_grid_takes_the_person_there(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    home = family(city)
    new_flat = flat(city, OTHER_GRID)
    act_as(PUBLIC_SECURITY)

    response = client.post(EVENTS, json=event("move_in", home.spouse, unit_id=new_flat.id))

    assert response.json()["applied"] is True
    city.refresh(home.spouse)
    assert home.spouse.grid_code == OTHER_GRID
    assert home.spouse.household_id is None  # the household stays in its grid
    old, new = residences(city, home.spouse)
    assert (old.unit_id, old.until) == (home.home.id, date(2026, 3, 14))
    assert (new.unit_id, new.since, new.until) == (new_flat.id, date(2026, 3, 14), None)
    deliver()
    assert sorted((task.kind, task.assignee) for task in tasks(city, home.spouse)) == [
        ("verify_move_in", GRID),
        ("verify_move_in", OTHER_GRID),
    ]


def test_a_move_out_closes_the_residence_and_tells_the_grid(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)

    response = client.post(EVENTS, json=event("move_out", home.spouse))

    assert response.json()["applied"] is True
    [residence] = residences(city, home.spouse)
    assert residence.until == date(2026, 3, 14)
    deliver()
    assert [(task.kind, task.assignee) for task in tasks(city, home.spouse)] == [
        ("verify_move_out", GRID)
    ]


def test_a_move_out_of_nowhere_is_recorded_but_changes_nothing(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    loner = resident(city)  # no residence on record
    act_as(PUBLIC_SECURITY)

    answer = client.post(EVENTS, json=event("move_out", loner)).json()

    assert (answer["applied"], answer["reason"]) == (False, "no_open_residence")


def test_a_tenancy_starts_and_ends(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    tenant = resident(city)
    rented = flat(city, number="601")
    act_as(RENTAL_HOUSING)

    started = client.post(
        EVENTS,
        json=event(
            "tenancy_started",
            tenant,
            unit_id=rented.id,
            occurred_at="2025-09-01T10:00:00+08:00",
            until="2026-08-31",
        ),
    )
    ended = client.post(
        EVENTS,
        json=event(
            "tenancy_ended", tenant, unit_id=rented.id, occurred_at="2026-02-28T18:00:00+08:00"
        ),
    )

    assert started.json()["applied"] is True and ended.json()["applied"] is True
    [tenancy] = tenancies(city, tenant)
    assert (tenancy.since, tenancy.until, tenancy.status.value) == (
        date(2025, 9, 1),
        date(2026, 2, 28),
        "ended",
    )


def test_the_end_of_an_unknown_tenancy_is_recorded_but_changes_nothing(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    tenant = resident(city)
    act_as(RENTAL_HOUSING)

    answer = client.post(EVENTS, json=event("tenancy_ended", tenant, unit_id=flat(city).id)).json()

    assert (answer["applied"], answer["reason"]) == (False, "no_active_tenancy")


def test_a_department_outside_the_catalogue_s_owners_cannot_publish(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    act_as(WATER)

    response = client.post(
        EVENTS, json=event("marriage_status_changed", home.head, marital_status="divorced")
    )

    assert response.status_code == 403


# ============================================================================ ordering


def test_a_late_move_out_older_than_the_latest_move_in_does_not_close_the_new_home(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    new_flat = flat(city, number="1201")
    act_as(PUBLIC_SECURITY)
    # She moved out of the old flat on 1 March and into the new one on 10 March; the old
    # flat's office sends its move out only after the new one's move in arrived.
    moved_in = client.post(
        EVENTS,
        json=event(
            "move_in", home.spouse, unit_id=new_flat.id, occurred_at="2026-03-10T10:00:00+08:00"
        ),
    ).json()
    late = client.post(
        EVENTS, json=event("move_out", home.spouse, occurred_at="2026-03-01T10:00:00+08:00")
    )

    assert moved_in["applied"] is True
    assert late.status_code == 202
    assert (late.json()["applied"], late.json()["reason"]) == (False, "superseded")
    old, new = residences(city, home.spouse)
    assert old.until == date(2026, 3, 10)  # closed by the move in, untouched by the late event
    assert (new.unit_id, new.until) == (new_flat.id, None)


def test_events_after_a_death_are_recorded_but_not_applied(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)
    client.post(EVENTS, json=event("death", home.head, occurred_at=DIED_AT))

    after = client.post(
        EVENTS, json=event("move_out", home.head, occurred_at="2026-04-01T10:00:00+08:00")
    ).json()
    before = client.post(
        EVENTS, json=event("move_out", home.head, occurred_at="2026-03-01T10:00:00+08:00")
    ).json()
    again = client.post(EVENTS, json=event("death", home.head)).json()

    assert (after["applied"], after["reason"]) == (False, "subject_deceased")
    assert (before["applied"], before["reason"]) == (False, "superseded")
    assert (again["applied"], again["reason"]) == (False, "already_deceased")


def test_a_late_marriage_change_does_not_undo_a_newer_one(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city, marital_status="married")
    act_as(FAMILY_PLANNING)
    client.post(
        EVENTS,
        json=event(
            "marriage_status_changed",
            person,
            marital_status="divorced",
            occurred_at="2026-02-01T10:00:00+08:00",
        ),
    )

    late = client.post(
        EVENTS,
        json=event(
            "marriage_status_changed",
            person,
            marital_status="married",
            occurred_at="2025-06-01T10:00:00+08:00",
        ),
    ).json()

    assert (late["applied"], late["reason"]) == (False, "superseded")
    city.refresh(person)
    assert person.marital_status.value == "divorced"


def test_a_death_before_the_birth_is_refused(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)  # born in 1985
    before = snapshot(city)
    act_as(PUBLIC_SECURITY)

    response = client.post(
        EVENTS, json=event("death", home.head, occurred_at="1980-01-01T10:00:00+08:00")
    )

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "occurred_at"
    assert snapshot(city) == before
