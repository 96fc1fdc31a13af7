"""The demo city's cases as the command centre, a department and the evaluation find them:
90 days of history taken through the loop, with every case's columns agreeing with its
transitions, open work in every state, and the seed grid's handled cases waiting for
zhangsijun."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from citygrid.cases import evaluation, service
from citygrid.cases.models import Action, Case, CaseMeToo, CaseSource, CaseState, CaseTransition
from citygrid.demo.cases import OFFICERS, case_count, generate_case_rows, open_quota
from citygrid.demo.geography import build_territory
from citygrid.demo.seed import SEED_GRID_CODE, SEED_GRID_WORKER
from citygrid.kit.actor import Actor
from citygrid.territory.locator import Locator
from tests.demo.conftest import SEED, SMALL_RESIDENTS

DISTRICT_OFFICIAL = Actor(name="district-official", role="district_official", scopes=("440104",))
ZHANG = Actor(name=SEED_GRID_WORKER, role="grid_worker", scopes=(SEED_GRID_CODE,))


def _cases(engine: Engine) -> tuple[list[Case], dict[int, list[CaseTransition]]]:
    with Session(engine) as session:
        cases = list(session.scalars(select(Case).order_by(Case.id)))
        history: dict[int, list[CaseTransition]] = defaultdict(list)
        for row in session.scalars(select(CaseTransition).order_by(CaseTransition.id)):
            history[row.case_id].append(row)
        session.expunge_all()
    return cases, history


def test_the_history_has_cases_in_every_state(demo_engine: Engine) -> None:
    cases, _history = _cases(demo_engine)
    states = Counter(case.state for case in cases)

    assert len(cases) >= case_count(SMALL_RESIDENTS)
    for state in CaseState:
        assert states[state] > 0, state
    quota = open_quota(case_count(SMALL_RESIDENTS))
    for state in service.OPEN_STATES:
        assert states[state] >= quota, state
    # Most of the history is done with.
    assert states[CaseState.CLOSED] + states[CaseState.EVALUATED] > len(cases) / 2
    now = datetime.now(UTC)
    assert all(now - timedelta(days=91) < case.reported_at <= now for case in cases)
    assert sum(1 for case in cases if service.is_overdue(case, now)) > 0


def test_every_case_agrees_with_its_transitions(demo_engine: Engine) -> None:
    cases, history = _cases(demo_engine)
    with Session(demo_engine) as session:
        me_toos = Counter(session.scalars(select(CaseMeToo.case_id)))

    for case in cases:
        steps = history[case.id]
        assert steps[0].action is Action.REPORT and steps[0].from_state is None
        assert steps[0].at == case.reported_at
        for before, after in zip(steps, steps[1:], strict=False):
            assert after.from_state == before.to_state, case.ref
            assert after.at >= before.at, case.ref
        assert steps[-1].to_state == case.state
        assert all(step.grid_code == case.grid_code for step in steps)
        actions = [step.action for step in steps]
        verifies = [step for step in steps if step.action is Action.VERIFY]
        assert case.rework_count == sum(1 for s in verifies if s.data["result"] == "fail")
        if case.state in (CaseState.CLOSED, CaseState.EVALUATED):
            closing = verifies[-1]
            assert closing.data["result"] == "pass" and closing.at == case.closed_at
            assert case.closed_on_time == (case.closed_at <= case.deadline_at)
        else:
            assert case.closed_at is None and case.closed_on_time is None
        feedbacks = [step for step in steps if step.action is Action.FEEDBACK]
        if feedbacks:
            assert case.handled_at == feedbacks[-1].at
            assert case.handling_hours is not None and case.handling_hours >= 0
        else:
            assert case.handling_hours is None and case.handled_at is None
        if Action.DISPATCH in actions:
            dispatch = next(step for step in steps if step.action is Action.DISPATCH)
            assert case.dispatched_at == dispatch.at
            assert case.deadline_at is not None
            assert dispatch.data["deadline_at"] == case.deadline_at.isoformat()
        else:
            assert case.deadline_at is None
        escalations = [step for step in steps if step.action is Action.ESCALATE]
        assert len(escalations) <= 1
        assert (case.escalated_at is None) == (not escalations)
        if escalations:
            assert case.deadline_at is not None and escalations[0].at > case.deadline_at
        if case.state is CaseState.EVALUATED:
            assert case.satisfaction is not None and case.evaluated_at == steps[-1].at
        if case.duplicate_of is not None:
            assert case.state is CaseState.REJECTED
            assert steps[-1].data["reason"] == "duplicate"
        assert case.me_too_count == me_toos[case.id]
        assert case.updated_at == steps[-1].at


def test_contacts_only_for_hotline_and_citizen_reports(demo_engine: Engine) -> None:
    cases, _history = _cases(demo_engine)
    with demo_engine.connect() as connection:
        id_numbers = re.compile(r"\d{17}[\dX]")
        names = {row[0] for row in connection.execute(text("SELECT name FROM persons"))}

    hotline = [case for case in cases if case.source is CaseSource.HOTLINE]
    assert hotline and all(case.reporter_contact_phone for case in hotline)
    for case in cases:
        if case.source is CaseSource.GRID_WORKER:
            assert case.reporter_contact_name is None and case.reporter_contact_phone is None
        assert not id_numbers.search(case.description)
        assert not any(name in case.description for name in names if len(name) >= 3)


def test_the_cases_lie_in_their_grids_and_go_to_the_categorys_department(
    demo_engine: Engine,
) -> None:
    cases, _history = _cases(demo_engine)
    with Session(demo_engine) as session:
        locator = Locator.from_session(session)
    catalogue = service.categories()

    for case in cases:
        assert locator.locate(case.lon, case.lat) == case.grid_code
        assert case.community_code == case.grid_code[:12]
        assert case.department == catalogue.get(case.category).department  # type: ignore[union-attr]
    common = Counter(case.category for case in cases).most_common(5)
    assert {"E0403", "E0101", "C0201"} & {code for code, _n in common}


def test_each_department_s_cases_are_handled_by_its_own_demo_officer(
    demo_engine: Engine,
) -> None:
    _all, history = _cases(demo_engine)
    handlers: dict[str, set[str]] = defaultdict(set)
    for transitions in history.values():
        for row in transitions:
            if row.actor_role == "department_officer" and row.actor_department:
                handlers[row.actor_department].add(row.actor_name)

    assert handlers
    for department, names in handlers.items():
        assert names == {OFFICERS.get(department, department)}, department


def test_the_seed_grid_has_cases_waiting_for_zhangsijun(demo_engine: Engine) -> None:
    with Session(demo_engine) as session:
        waiting = service.awaiting_verification(session, ZHANG)
        mine = service.list_cases(session, ZHANG, limit=200)

    assert len(waiting) >= 3
    assert all(case.grid_code == SEED_GRID_CODE for case in waiting)
    assert len(mine.items) >= 10


def test_the_command_centre_and_an_inbox_have_work(demo_engine: Engine) -> None:
    officer = Actor(
        name="ps-officer",
        role="department_officer",
        department="public-security",
        scopes=("440104",),
    )
    dispatcher = Actor(name="yuexiu-dispatcher", role="dispatcher", scopes=("440104",))
    with Session(demo_engine) as session:
        inbox = service.department_inbox(session, officer)
        board = service.open_cases(session, dispatcher)

    assert inbox and all(case.department == "public-security" for case in inbox)
    assert {case.state for case in board} == set(service.OPEN_STATES)


def test_the_evaluation_shows_sensible_rates(demo_engine: Engine) -> None:
    now = datetime.now(UTC)
    with Session(demo_engine) as session:
        period = evaluation.parse_period(
            (now - timedelta(days=89)).date().isoformat(), None, now=now
        )
        result = evaluation.evaluate(
            session, DISTRICT_OFFICIAL, group_by="department", period=period, now=now
        )

    total = result.total
    assert total.reported > 300
    assert 0.85 <= (total.registration_rate or 0) < 1
    assert 0.6 <= (total.closure_rate or 0) < 1
    assert 0.4 <= (total.on_time_closure_rate or 0) < (total.closure_rate or 0)
    assert 0 < (total.rework_rate or 0) < 0.2
    assert 0 < (total.handling_hours_avg or 0) < (total.handling_hours_p90 or 0)
    assert {item.key for item in result.items} >= {"urban-management", "public-security"}


def test_the_same_seed_gives_the_same_case_history() -> None:
    now = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    territory = build_territory(SEED)
    per_grid = {grid.code: 30 for grid in territory.grids}

    def history(seed: int) -> list[tuple[object, ...]]:
        rows = generate_case_rows(
            territory,
            residents_per_grid=per_grid,
            residents=SMALL_RESIDENTS,
            seed=seed,
            now=now,
            sqlite=True,
        )
        return rows.tables["cases"]

    first = history(SEED)
    assert first == history(SEED)
    assert first != history(SEED + 1)
