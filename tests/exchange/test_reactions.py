"""The reactions: each is written once, over a batch of messages; the delivery hands it a
chunk's entries together, or one entry at a time (a chunk of one, the fallback that isolates
a failing entry). Both give the same tasks, the same "told" entries and the same changes."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.audit.models import AuditEntry
from citygrid.exchange import outbox, service
from citygrid.exchange.models import AllowanceRecord, PensionRecord, Task, TenancyRecord
from citygrid.exchange.reactions import REGISTRY
from tests.exchange.story import (
    OTHER_GRID,
    PUBLIC_SECURITY,
    event,
    family,
    flat,
    give_allowance,
    give_pension,
    give_tenancy,
    resident,
)


def _publish_mix(city: Session, sessions: outbox.SessionFactory) -> int:
    """Deaths with and without benefits, heads and not, moves of heads and not: how many
    life events."""
    homes = [family(city) for _ in range(3)]
    for home in homes[:2]:
        give_allowance(city, home.head)
        give_pension(city, home.head)
        give_tenancy(city, home.head, flat(city, number="501"))
    loner = resident(city, home=flat(city, number="601"))
    away = flat(city, OTHER_GRID, number="701")
    city.flush()
    outbox.drain(sessions, worker_id="set-up")
    events = [
        event("death", homes[0].head),
        event("death", homes[1].head),
        event("death", homes[0].spouse),
        event("death", loner),
        event("move_in", homes[2].head, unit_id=away.id),
        event("move_in", homes[1].spouse, unit_id=away.id),
        event("move_out", homes[2].spouse),
    ]
    for data in events:
        service.publish_event(city, PUBLIC_SECURITY, data=data)
    city.flush()
    return len(events)


def _effects(city: Session) -> dict[str, Counter[Any]]:
    """What the reactions did, without ids and clock readings."""
    city.expire_all()
    tasks = Counter(
        (
            task.kind,
            str(task.assignee_kind),
            task.assignee,
            task.grid_code,
            task.subject_person_id,
            task.subject_ref,
            task.created_by_event_id,
            str(task.state),
        )
        for task in city.scalars(select(Task))
    )
    told = Counter(
        (
            entry.actor,
            entry.role,
            entry.department,
            tuple(entry.scope),
            entry.purpose,
            entry.outcome,
            tuple(entry.subjects),
            tuple(entry.fields),
            json.dumps(entry.detail, sort_keys=True),
        )
        for entry in city.scalars(select(AuditEntry).where(AuditEntry.action == "told"))
    )
    held = Counter(
        (model.__name__, row.person_id, str(row.status), str(getattr(row, "until", None)))
        for model in (AllowanceRecord, PensionRecord, TenancyRecord)
        for row in city.scalars(select(model))
    )
    return {"tasks": tasks, "told": told, "held": held}


def test_a_chunk_of_entries_and_one_entry_at_a_time_have_the_same_effects(
    city: Session, sessions: outbox.SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = _publish_mix(city, sessions)
    before = _effects(city)
    reports = {}
    effects = {}
    for chunk in (1, 50):
        monkeypatch.setattr(outbox, "DELIVERY_CHUNK", chunk)
        attempt = city.begin_nested()
        reports[chunk] = outbox.drain(sessions, worker_id="w")
        effects[chunk] = _effects(city)
        attempt.rollback()

    assert reports[1].delivered == reports[50].delivered == published
    assert reports[1].applied == reports[50].applied
    assert reports[1].failed == reports[50].failed == 0
    assert effects[1] == effects[50]
    new_tasks = effects[50]["tasks"] - before["tasks"]
    new_told = effects[50]["told"] - before["told"]
    assert Counter(key[0] for key in new_tasks.elements()) == Counter(
        {
            "verify_death": 4,
            "allowance_review": 2,
            "household_head_needed": 3,
            "verify_move_in": 4,  # the grids left and reached
            "verify_move_out": 1,
        }
    )
    actors = Counter(key[0].removeprefix("exchange:") for key in new_told.elements())
    assert actors == Counter(
        {
            "grid.verification": 9,
            "civil-affairs.allowance": 2,
            "social-security.pension": 2,
            "rental-housing.tenancy": 2,
            "registry.household": 3,
        }
    )


def test_every_reaction_offers_its_batch_handler() -> None:
    assert all(consumer.batch_handler is not None for consumer in REGISTRY)
