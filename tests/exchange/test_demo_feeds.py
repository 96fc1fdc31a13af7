"""The demo's simulated department feeds publish plausible life events through the real
publish service, as the department that owns each type, deterministically per seed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.demo import feeds
from citygrid.demo.tasks import CASES_TASK, FEEDS_TASK, periodic_tasks
from citygrid.exchange import outbox
from citygrid.exchange.catalogue import default_catalogue
from citygrid.exchange.models import LifeEventRecord
from citygrid.kit.settings import Settings
from tests.exchange.story import family, flat, resident

SEED = 20261127


def _small_city(session: Session) -> None:
    """A dozen households of two, some old residents, some young women, rental flats."""
    for _ in range(6):
        family(session)
    for number in ("601", "602", "603"):
        flat(session, number=number)
    for year in (1931, 1940, 1948):
        resident(session, birth_date=date(year, 6, 1))
    for year in (1990, 1995, 1998):
        resident(session, birth_date=date(year, 2, 2), male=False, name="陈丽华")
    session.flush()


def test_the_feeds_publish_events_of_many_kinds_as_their_owners(
    city: Session, deliver: Callable[[], outbox.DeliveryReport]
) -> None:
    _small_city(city)

    published = [feeds.publish_next(city, seed=SEED) for _ in range(40)]
    deliver()

    kinds = Counter(kind for kind in published if kind is not None)
    assert sum(kinds.values()) >= 25
    assert len(kinds) >= 4
    events = list(city.scalars(select(LifeEventRecord).order_by(LifeEventRecord.id)))
    assert len(events) == sum(kinds.values())
    catalogue = default_catalogue()
    for record in events:
        assert record.source_event_id.startswith(feeds.SOURCE_PREFIX)
        owner = catalogue.event_type(record.type)
        assert owner is not None and record.department == owner.owner
    assert any(record.applied for record in events)


def test_the_same_seed_makes_the_same_choices(city: Session) -> None:
    _small_city(city)

    first = [feeds.next_event(city, seed=SEED, number=n) for n in range(12)]
    again = [feeds.next_event(city, seed=SEED, number=n) for n in range(12)]
    other = [feeds.next_event(city, seed=SEED + 1, number=n) for n in range(12)]

    assert first == again
    assert first != other


def test_the_feeds_run_only_in_demo_mode_when_switched_on(database_url: str) -> None:
    def names(**values: object) -> list[str]:
        settings = Settings(database_url=database_url, **values)  # type: ignore[arg-type]
        return [task.name for task in periodic_tasks(settings)]

    assert names(demo_mode=True, demo_feeds=True) == [FEEDS_TASK, CASES_TASK]
    assert names(demo_mode=True, demo_feeds=False) == []
    assert names(demo_mode=False, demo_feeds=True, secret_key="x" * 40) == []
