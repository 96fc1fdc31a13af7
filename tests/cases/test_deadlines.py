"""Deadlines in working time from dispatch; overdue cases listed and escalated once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.cases import service, tasks
from citygrid.cases.models import Action, Case, CaseTransition
from citygrid.kit.actor import Actor
from citygrid.kit.clock import CHINA_STANDARD_TIME
from citygrid.kit.errors import Conflict, Forbidden
from citygrid.kit.settings import Settings
from citygrid.kit.worker import TASK_MODULES
from citygrid.territory.locator import Locator
from tests.cases.conftest import DISPATCHER, HOUSING, ZHANG
from tests.cases.helpers import event_names, file_case, step


def cst(month: int, day: int, hour: int, minute: int = 0, year: int = 2025) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CHINA_STANDARD_TIME)


def dispatched_case(
    session: Session, locator: Locator, at: datetime, priority: str = "high"
) -> Case:
    case = file_case(session, ZHANG, locator, now=at, priority=priority)
    step(session, DISPATCHER, case, "register", now=at)
    return step(session, DISPATCHER, case, "dispatch", now=at)


def test_a_case_dispatched_on_the_eve_of_national_day_is_due_after_the_holiday(
    city: Session, locator: Locator
) -> None:
    # Floor tiles, high priority: 2 working days. 1-8 October 2025 are off.
    case = dispatched_case(city, locator, cst(9, 30, 10))

    assert case.deadline_at == cst(10, 10, 10)
    dispatch = city.query(CaseTransition).filter_by(case_id=case.id, action=Action.DISPATCH).one()
    assert dispatch.data["deadline"] == "2d"
    assert datetime.fromisoformat(dispatch.data["deadline_at"]) == cst(10, 10, 10)


def test_an_urgent_case_on_friday_afternoon_is_due_on_monday_morning(
    city: Session, locator: Locator
) -> None:
    # Floor tiles, urgent: 4 working hours.
    case = dispatched_case(city, locator, cst(11, 14, 16), priority="urgent")

    assert case.deadline_at == cst(11, 17, 10, 30)


def test_the_dispatcher_may_raise_the_priority_at_dispatch(city: Session, locator: Locator) -> None:
    case = file_case(city, ZHANG, locator, priority="normal")
    step(city, DISPATCHER, case, "register")

    dispatched = step(city, DISPATCHER, case, "dispatch", priority="urgent", now=cst(11, 17, 9))

    assert dispatched.priority == "urgent"
    assert dispatched.deadline_at == cst(11, 17, 15, 0)  # 3 h before lunch, 1 h after


def test_rework_keeps_the_deadline(city: Session, locator: Locator) -> None:
    case = dispatched_case(city, locator, cst(11, 17, 9))
    deadline = case.deadline_at
    step(city, HOUSING, case, "accept", now=cst(11, 17, 10))
    step(city, HOUSING, case, "feedback", note="done", now=cst(11, 17, 11))

    step(city, ZHANG, case, "verify", result="fail", note="still loose", now=cst(11, 17, 15))

    assert case.state == "handling"
    assert case.deadline_at == deadline


def test_overdue_cases_are_found_and_escalated_once(city: Session, locator: Locator) -> None:
    late = dispatched_case(city, locator, cst(11, 14, 16), priority="urgent")  # Mon 10:30
    on_time = dispatched_case(city, locator, cst(11, 17, 9))  # due Wed 9:00
    handled = dispatched_case(city, locator, cst(11, 14, 16), priority="urgent")
    step(city, HOUSING, handled, "accept", now=cst(11, 17, 9))
    step(city, HOUSING, handled, "feedback", note="done", now=cst(11, 17, 10))
    monday_noon = cst(11, 17, 12)

    overdue = service.overdue_cases(city, monday_noon)
    first = service.escalate_overdue(city, monday_noon)
    second = service.escalate_overdue(city, monday_noon + timedelta(hours=3))

    assert [case.ref for case in overdue] == [late.ref]
    assert service.is_overdue(late, monday_noon)
    assert not service.is_overdue(on_time, monday_noon)
    assert (first, second) == (1, 0)
    assert late.escalated_at == monday_noon
    assert late.state == "dispatched"  # escalation flags, it does not move the case
    escalation = city.query(CaseTransition).filter_by(case_id=late.id, action="escalate").one()
    assert (escalation.actor_role, escalation.from_state, escalation.to_state) == (
        "system",
        "dispatched",
        "dispatched",
    )
    assert event_names(city, late.id)[-1] == "case.changed"


def test_an_escalation_by_hand_is_refused(city: Session, locator: Locator) -> None:
    case = dispatched_case(city, locator, cst(11, 14, 16), priority="urgent")

    with pytest.raises(Forbidden):
        step(city, DISPATCHER, case, "escalate", now=cst(11, 18, 9))
    system = Actor(name="escalation", role="system")
    with pytest.raises(Conflict, match="overdue"):
        step(city, system, case, "escalate", now=cst(11, 17, 9))  # not yet overdue


def test_the_list_filters_overdue_cases(
    city: Session, locator: Locator, client: TestClient, act_as: Callable[[Actor], None]
) -> None:
    long_ago = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    late = dispatched_case(city, locator, long_ago, priority="urgent")
    fresh = file_case(city, ZHANG, locator)
    act_as(DISPATCHER)

    overdue = client.get("/api/v1/cases", params={"overdue": "true"}).json()["items"]
    not_overdue = client.get("/api/v1/cases", params={"overdue": "false"}).json()["items"]

    assert [item["id"] for item in overdue] == [late.ref]
    assert overdue[0]["overdue"] is True
    assert [item["id"] for item in not_overdue] == [fresh.ref]


def test_the_worker_escalates_overdue_cases_batch_by_batch(
    city: Session, locator: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = dispatched_case(city, locator, cst(11, 14, 16), priority="urgent")
    second = dispatched_case(city, locator, cst(11, 14, 17), priority="urgent")
    monkeypatch.setattr(service, "ESCALATION_BATCH", 1)
    [task] = tasks.periodic_tasks(Settings(demo_mode=True))

    runs = [tasks.escalate_overdue_cases(city, now=cst(11, 18, 9)) for _ in range(3)]

    assert (task.name, task.drain) == ("cases.escalate_overdue", True)
    assert runs == [1, 1, 0]  # the worker drains while a run did something
    assert first.escalated_at is not None and second.escalated_at is not None


def test_the_worker_runs_the_cases_task() -> None:
    assert "citygrid.cases.tasks" in TASK_MODULES
