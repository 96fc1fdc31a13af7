"""Simulated department feeds: in demo mode, a few plausible life events a minute, published
through the real publish service (``exchange.service.publish_event``) as the owning
department's system, so the demo city lives: residents are born, die, move, marry and rent,
and the reactions, tasks and access log follow as they would for a real department.

Which event comes next is decided by a random generator seeded with the demo's seed and the
number of feed events already published (``demo-feed-NNNNNN`` source ids), so the same demo
database and seed give the same sequence of choices, and a restarted server continues it
rather than repeating it. (Subjects found through the current state of the city may differ
when people have published other events in between.)

The kit worker runs it as the task ``demo.feeds`` (see ``demo/tasks.py``) only when
``CITYGRID_DEMO_MODE`` and ``CITYGRID_DEMO_FEEDS`` are both on: ``citygrid demo`` turns the
feeds on unless ``--no-feeds``; ``citygrid serve`` never has them unless asked.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from citygrid.access.persons_api import begin_audited_read
from citygrid.demo import repository, vocabulary
from citygrid.exchange import service as exchange
from citygrid.kit.actor import Actor
from citygrid.kit.clock import CHINA_STANDARD_TIME
from citygrid.kit.errors import CitygridError
from citygrid.kit.models import utcnow
from citygrid.registry import service as registry
from citygrid.registry.idnumber import make_id_number
from citygrid.registry.models import ResidenceKind

logger = logging.getLogger("citygrid.demo.feeds")

SOURCE_PREFIX = "demo-feed-"
DISTRICT = "440104"
#: Picks tried before a kind of event gives up for this run (the next run tries again).
ATTEMPTS = 12


def department_system(department: str) -> Actor:
    """The demo API client of a department, as an in-process actor."""
    return Actor(
        name=department,
        role="department_officer",
        department=department,
        scopes=(DISTRICT,),
        kind="client",
    )


PUBLIC_SECURITY = department_system("public-security")
FAMILY_PLANNING = department_system("family-planning")
RENTAL_HOUSING = department_system("rental-housing")


@dataclass(frozen=True)
class FeedEvent:
    """A simulated event ready to publish: who publishes it and the event itself."""

    publisher: Actor
    data: dict[str, Any]


def _years_ago(today: date, years: int) -> date:
    return today.replace(year=today.year - years, day=min(today.day, 28))


class _Picker:
    """Random choices in the city for one event."""

    def __init__(self, session: Session, rng: random.Random) -> None:
        self.session = session
        self.rng = rng
        self.today = utcnow().astimezone(CHINA_STANDARD_TIME).date()
        self.top = repository.max_person_id(session)
        self.units = repository.max_unit_id(session)

    def person(self, **conditions: Any) -> int | None:
        """A random living person matching the conditions (from a random id, wrapping)."""
        if self.top == 0:
            return None
        start = self.rng.randint(1, self.top)
        found = repository.pick_person(self.session, from_id=start, **conditions)
        if found is None and start > 1:
            found = repository.pick_person(self.session, from_id=1, **conditions)
        return found

    def unit(self, *uses: str) -> int | None:
        """A random housing unit of one of these uses (from a random id, wrapping)."""
        if self.units == 0:
            return None
        start = self.rng.randint(1, self.units)
        found = repository.pick_unit(self.session, from_id=start, uses=uses)
        if found is None and start > 1:
            found = repository.pick_unit(self.session, from_id=1, uses=uses)
        return found


def _death(pick: _Picker) -> FeedEvent | None:
    person_id = pick.person(born_before=_years_ago(pick.today, 70))
    if person_id is None:
        return None
    person = registry.get_person(pick.session, person_id=person_id)
    return FeedEvent(PUBLIC_SECURITY, {"type": "death", "id_number": person.id_number})


def _birth(pick: _Picker) -> FeedEvent | None:
    mother_id = pick.person(
        sex="F",
        born_before=_years_ago(pick.today, 22),
        born_after=_years_ago(pick.today, 40),
        with_household=True,
    )
    if mother_id is None:
        return None
    mother = registry.get_person(pick.session, person_id=mother_id)
    sequence = pick.rng.randint(1, 999)
    id_number = make_id_number(DISTRICT, pick.today, sequence)
    if registry.person_keys(pick.session, id_numbers=[id_number]):
        return None
    chars = vocabulary.MALE_CHARS if sequence % 2 else vocabulary.FEMALE_CHARS
    given = pick.rng.choice(chars) + pick.rng.choice(vocabulary.NEUTRAL_CHARS + chars)
    return FeedEvent(
        PUBLIC_SECURITY,
        {
            "type": "birth",
            "id_number": id_number,
            "name": mother.name[0] + given,
            "ethnicity": mother.ethnicity,
            "parent_id_number": mother.id_number,
        },
    )


def _move_in(pick: _Picker) -> FeedEvent | None:
    person_id = pick.person(born_before=_years_ago(pick.today, 18))
    unit_id = pick.unit("owner_occupied", "rental", "vacant")
    if person_id is None or unit_id is None:
        return None
    person = registry.get_person(pick.session, person_id=person_id)
    return FeedEvent(
        PUBLIC_SECURITY,
        {
            "type": "move_in",
            "id_number": person.id_number,
            "unit_id": unit_id,
            "kind": "actual_residence",
        },
    )


def _move_out(pick: _Picker) -> FeedEvent | None:
    person_id = pick.person(born_before=_years_ago(pick.today, 18))
    if person_id is None:
        return None
    movable = (ResidenceKind.ACTUAL_RESIDENCE, ResidenceKind.REGISTERED_ADDRESS)
    residences = [
        residence
        for residence in registry.current_residences(pick.session, person_id=person_id)
        if residence.kind in movable
    ]
    if not residences:
        return None
    residence = residences[0]
    person = registry.get_person(pick.session, person_id=person_id)
    return FeedEvent(
        PUBLIC_SECURITY,
        {
            "type": "move_out",
            "id_number": person.id_number,
            "unit_id": residence.unit_id,
            "kind": residence.kind.value,
        },
    )


# A plausible next marital status from the current one.
_NEXT_MARITAL = {
    None: "married",
    "unmarried": "married",
    "married": "divorced",
    "divorced": "married",
    "widowed": "married",
}


def _marriage(pick: _Picker) -> FeedEvent | None:
    person_id = pick.person(born_before=_years_ago(pick.today, 22))
    if person_id is None:
        return None
    person = registry.get_person(pick.session, person_id=person_id)
    current = person.marital_status.value if person.marital_status else None
    return FeedEvent(
        FAMILY_PLANNING,
        {
            "type": "marriage_status_changed",
            "id_number": person.id_number,
            "marital_status": _NEXT_MARITAL[current],
        },
    )


def _tenancy_started(pick: _Picker) -> FeedEvent | None:
    person_id = pick.person(born_before=_years_ago(pick.today, 18))
    unit_id = pick.unit("rental")
    if person_id is None or unit_id is None:
        return None
    person = registry.get_person(pick.session, person_id=person_id)
    until = pick.today + timedelta(days=365 * pick.rng.choice((1, 2, 3)))
    return FeedEvent(
        RENTAL_HOUSING,
        {
            "type": "tenancy_started",
            "id_number": person.id_number,
            "unit_id": unit_id,
            "until": until.isoformat(),
        },
    )


def _tenancy_ended(pick: _Picker) -> FeedEvent | None:
    person_id = pick.person(born_before=_years_ago(pick.today, 18))
    if person_id is None:
        return None
    tenancies = exchange.active_tenancies(pick.session, person_id=person_id)
    if not tenancies:
        return None
    person = registry.get_person(pick.session, person_id=person_id)
    return FeedEvent(
        RENTAL_HOUSING,
        {"type": "tenancy_ended", "id_number": person.id_number, "unit_id": tenancies[0].unit_id},
    )


#: Event kinds and how often each comes (moves and marriages are commoner than deaths).
MAKERS: tuple[tuple[str, float, Callable[[_Picker], FeedEvent | None]], ...] = (
    ("move_in", 0.26, _move_in),
    ("move_out", 0.10, _move_out),
    ("marriage_status_changed", 0.18, _marriage),
    ("tenancy_started", 0.16, _tenancy_started),
    ("tenancy_ended", 0.12, _tenancy_ended),
    ("birth", 0.10, _birth),
    ("death", 0.08, _death),
)


def next_event(session: Session, *, seed: int, number: int) -> FeedEvent | None:
    """The ``number``-th simulated event of a demo seeded with ``seed``: a kind drawn by
    weight, then the other kinds in a drawn order when the city holds no plausible subject
    for it (no young mother, nobody renting); None when no kind finds one."""
    key = hashlib.sha256(f"citygrid-demo-feed:{seed}:{number}".encode()).digest()
    rng = random.Random(int.from_bytes(key[:16]))  # noqa: S311 - a simulation, not security
    weights = [weight for _name, weight, _maker in MAKERS]
    first = rng.choices(range(len(MAKERS)), weights=weights)[0]
    others = [index for index in range(len(MAKERS)) if index != first]
    rng.shuffle(others)
    pick = _Picker(session, rng)
    for index in [first, *others]:
        maker = MAKERS[index][2]
        for _attempt in range(ATTEMPTS):
            made = maker(pick)
            if made is not None:
                return made
    return None


def publish_next(session: Session, *, seed: int) -> str | None:
    """Publish the next simulated event through the publish service, as its department;
    returns its type (None when nothing was published this time). A refused event (the city
    changed under the pick) is skipped: its savepoint rolls back alone."""
    # SQLite: take the write lock before the first read, so the publish never meets a
    # snapshot another writer (the outbox worker) has made stale.
    begin_audited_read(session)
    number = exchange.count_events(session, source_prefix=SOURCE_PREFIX)
    made = next_event(session, seed=seed, number=number)
    if made is None:
        return None
    # A second ago: never in the future, and on the day a newborn's ID number gives.
    occurred_at = datetime.now(UTC) - timedelta(seconds=1)
    data = {
        **made.data,
        "source_event_id": f"{SOURCE_PREFIX}{number + 1:06d}",
        "occurred_at": occurred_at.isoformat(),
    }
    try:
        with session.begin_nested():
            outcome = exchange.publish_event(session, made.publisher, data=data)
    except CitygridError as error:
        logger.info("demo feed skipped a %s event (%s)", made.data["type"], error.code)
        return None
    logger.info(
        "demo feed published a %s event (applied: %s)", made.data["type"], outcome.body["applied"]
    )
    return str(made.data["type"])


@dataclass
class DemoFeed:
    """The worker task: one simulated event per run."""

    seed: int

    def __call__(self, session: Session) -> int:
        """Publish one event; returns 1 when one was published."""
        return 1 if publish_next(session, seed=self.seed) is not None else 0
