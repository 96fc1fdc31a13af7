"""The simulated case feed of the demo: every run (about every 30 s) a grid worker or a
resident reports a new case through the real intake service (``cases.service.create_case``),
and a few open cases take their next step of the loop through ``service.apply_transition``
as the actor whose step it is: the dispatcher registers and dispatches, the department
accepts and answers, the grid worker verifies on site, the dispatcher evaluates. The command
centre's map and feed show it live, as they would a real district.

The seed grid's handled cases are left for zhangsijun to verify (a visitor signs in as her).

Runs as the worker task ``demo.cases`` beside ``demo.feeds``, under the same switch
(``CITYGRID_DEMO_MODE`` and ``CITYGRID_DEMO_FEEDS``; ``citygrid demo --no-feeds`` turns both
off). The choices come from a generator seeded with the demo's seed and the number of cases
already in the database, so a run is reproducible on the same database.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass

from sqlalchemy.orm import Session

from citygrid.access.persons_api import begin_audited_read
from citygrid.cases import service
from citygrid.cases.catalogue import load_catalogue
from citygrid.cases.models import Action, CaseState, Priority
from citygrid.cases.schemas import CaseCreate, TransitionCreate
from citygrid.demo import repository
from citygrid.demo.cases import (
    CATEGORY_WEIGHTS,
    DISPATCHER,
    EMERGENCY_WEIGHT,
    OFFICERS,
    PROBLEMS,
)
from citygrid.demo.seed import SEED_GRID_CODE, SEED_GRID_WORKER
from citygrid.kit.actor import Actor
from citygrid.kit.errors import CitygridError
from citygrid.territory.locator import LocatorCache

logger = logging.getLogger("citygrid.demo.case_feed")

DISTRICT = "440104"
CASE_FEED_INTERVAL = 30.0
"""Seconds between two runs of the case feed."""
STEPS_PER_RUN = 2
"""Open cases moved along per run."""

_LOCATORS = LocatorCache()

DISPATCHER_ACTOR = Actor(name=DISPATCHER, role="dispatcher", scopes=(DISTRICT,), kind="account")


def department_actor(department: str) -> Actor:
    """The department's officer (or its API client) as an in-process actor."""
    return Actor(
        name=OFFICERS.get(department, department),
        role="department_officer",
        department=department,
        scopes=(DISTRICT,),
        kind="account" if department in OFFICERS else "client",
    )


def grid_worker(grid_code: str) -> Actor:
    """The worker of a grid (the seed grid's is zhangsijun)."""
    name = SEED_GRID_WORKER if grid_code == SEED_GRID_CODE else f"gw-{grid_code}"
    return Actor(name=name, role="grid_worker", scopes=(grid_code,), kind="account")


def _rng(seed: int, number: int) -> random.Random:
    key = hashlib.sha256(f"citygrid-demo-case-feed:{seed}:{number}".encode()).digest()
    return random.Random(int.from_bytes(key[:16]))  # noqa: S311 - a simulation


def report_case(session: Session, rng: random.Random) -> str | None:
    """A grid worker (or, one time in four, a resident) reports a case in a random grid;
    its reference, or None when the city has no grid."""
    grids = repository.grid_count(session)
    if grids == 0:
        return None
    found = repository.grid_bounds_at(session, rng.randrange(grids))
    if found is None:
        return None
    code, min_lon, min_lat, max_lon, max_lat = found
    categories = list(load_catalogue())
    weights = [
        CATEGORY_WEIGHTS.get(c.code, EMERGENCY_WEIGHT if c.code.startswith("E05") else 1.0)
        for c in categories
    ]
    category = rng.choices(categories, weights=weights)[0]
    problems = PROBLEMS.get(category.code)
    problem = rng.choice(problems) if problems else f"{category.name_zh}需要处理，请核实"
    lon = min_lon + (0.1 + 0.8 * rng.random()) * (max_lon - min_lon)
    lat = min_lat + (0.1 + 0.8 * rng.random()) * (max_lat - min_lat)
    if rng.random() < 0.25:
        actor = Actor(
            name=f"citizen:{rng.getrandbits(96):024x}", role=service.CITIZEN_ROLE, kind="public"
        )
    else:
        actor = grid_worker(code)
    data = CaseCreate(
        category=category.code,
        description=f"{problem}。",
        priority=rng.choices(
            (Priority.NORMAL, Priority.HIGH, Priority.URGENT), weights=(70, 22, 8)
        )[0],
        lat=round(lat, 6),
        lon=round(lon, 6),
    )
    intake = service.create_case(session, actor, data=data, locator=_LOCATORS.get(session))
    return intake.case.ref


#: The next step of an open case: its action and who takes it.
NEXT_STEP: dict[CaseState, Action] = {
    CaseState.REPORTED: Action.REGISTER,
    CaseState.REGISTERED: Action.DISPATCH,
    CaseState.DISPATCHED: Action.ACCEPT,
    CaseState.HANDLING: Action.FEEDBACK,
    CaseState.HANDLED: Action.VERIFY,
    CaseState.CLOSED: Action.EVALUATE,
}


def advance_case(session: Session, rng: random.Random, state: CaseState) -> str | None:
    """Move the case longest in ``state`` one step along as the right actor; the action
    taken, or None when no case is in that state (the seed grid's handled cases wait for
    zhangsijun)."""
    exclude = SEED_GRID_CODE if state is CaseState.HANDLED else None
    ref = repository.oldest_case_in_state(session, state=state.value, exclude_grid=exclude)
    if ref is None:
        return None
    case = service.get_case(session, DISPATCHER_ACTOR, case_ref=ref)
    action = NEXT_STEP[state]
    actor = DISPATCHER_ACTOR
    request = TransitionCreate(action=action)
    if action in (Action.ACCEPT, Action.FEEDBACK):
        actor = department_actor(case.department)
        if action is Action.FEEDBACK:
            request = TransitionCreate(action=action, note="已按结案标准处理完毕。")
    elif action is Action.VERIFY:
        actor = grid_worker(case.grid_code)
        if rng.random() < 0.08:
            request = TransitionCreate(action=action, result="fail", note="现场仍未修复，请返工。")
        else:
            request = TransitionCreate(action=action, result="pass")
    elif action is Action.EVALUATE:
        request = TransitionCreate(
            action=action, score=rng.choices((5, 4, 3), weights=(6, 3, 1))[0]
        )
    service.apply_transition(session, actor, case_ref=ref, request=request)
    return action.value


def run_once(session: Session, *, seed: int) -> int:
    """One run: a new case and up to ``STEPS_PER_RUN`` steps; returns how many were done.
    A step refused by the service (the case changed under the pick) is skipped alone."""
    begin_audited_read(session)  # SQLite: hold the write lock from the first read
    rng = _rng(seed, repository.count_cases(session))
    done = 0
    try:
        with session.begin_nested():
            if report_case(session, rng) is not None:
                done += 1
    except CitygridError as error:
        logger.info("demo case feed skipped a report (%s)", error.code)
    states = list(NEXT_STEP)
    for state in rng.sample(states, k=min(STEPS_PER_RUN, len(states))):
        try:
            with session.begin_nested():
                action = advance_case(session, rng, state)
        except CitygridError as error:
            logger.info("demo case feed skipped a step (%s)", error.code)
            continue
        if action is not None:
            done += 1
    logger.info("demo case feed did %d things", done)
    return done


@dataclass
class DemoCaseFeed:
    """The worker task: one new case and a few steps per run."""

    seed: int

    def __call__(self, session: Session) -> int:
        """Run once; returns how many cases were filed or moved."""
        return run_once(session, seed=self.seed)
