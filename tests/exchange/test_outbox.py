"""The outbox: at-least-once delivery, exactly-once effects. A worker that dies mid-batch,
a lease that runs out, a consumer that fails: every entry is delivered, no reaction twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from citygrid.exchange import outbox, service
from citygrid.exchange.models import OutboxDelivery, OutboxEntry, Task
from citygrid.exchange.reactions import REGISTRY
from citygrid.kit.models import utcnow
from citygrid.registry.models import Person
from tests.exchange.story import (
    FAMILY_PLANNING,
    PUBLIC_SECURITY,
    allowance,
    event,
    family,
    flat,
    give_allowance,
    resident,
    tasks,
    told,
)


class Killed(BaseException):
    """The worker process dies (SIGKILL): nothing after this point runs."""


def _entries(session: Session) -> list[OutboxEntry]:
    session.expire_all()
    return list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.id)))


def _deliveries(session: Session) -> Counter[tuple[int, str]]:
    rows = session.execute(select(OutboxDelivery.entry_id, OutboxDelivery.consumer))
    return Counter((entry_id, consumer) for entry_id, consumer in rows)


def _publish_deaths(city: Session, count: int) -> list:
    people = []
    for _ in range(count):
        home = family(city)
        give_allowance(city, home.head)
        people.append(home.head)
    return people


def test_a_worker_killed_mid_batch_leaves_nothing_undelivered_and_nothing_doubled(
    city: Session, sessions: outbox.SessionFactory, deliver: Callable[[], outbox.DeliveryReport]
) -> None:
    people = _publish_deaths(city, 3)
    deliver()  # the allowances' own news
    for person in people:
        service.publish_event(city, PUBLIC_SECURITY, data=event("death", person))
    city.flush()
    start = utcnow()
    lease = timedelta(seconds=30)

    claimed = outbox.claim(sessions, worker_id="worker-a", batch=10, lease=lease, now=start)
    assert len(claimed) == 3
    outbox.deliver(sessions, claimed[:1], worker_id="worker-a", now=start)
    dying = outbox.ConsumerRegistry([*REGISTRY])

    @dying.consumer("crash", topics=["life_event.death"])
    def _crash(_session: Session, _message: outbox.Message) -> None:
        raise Killed

    with pytest.raises(Killed):
        outbox.deliver(sessions, claimed[1:], worker_id="worker-a", registry=dying, now=start)

    # Worker b finds the dead worker's entries leased until the lease runs out ...
    early = outbox.run_once(sessions, worker_id="worker-b", now=start + timedelta(seconds=10))
    assert early.claimed == 0
    # ... and then takes them over.
    late = outbox.drain(sessions, worker_id="worker-b", now=start + lease + timedelta(seconds=1))

    assert (late.claimed, late.delivered, late.failed) == (2, 2, 0)
    assert [entry.state.value for entry in _entries(city)][-3:] == ["delivered"] * 3
    assert set(_deliveries(city).values()) == {1}
    for person in people:
        assert allowance(city, person).status.value == "suspended"
        assert Counter(task.kind for task in tasks(city, person)) == Counter(
            {"allowance_review": 1, "household_head_needed": 1, "verify_death": 1}
        )
        assert Counter(entry.department for entry in told(city, person))["civil-affairs"] == 1


def test_an_entry_delivered_again_applies_nothing_twice(
    city: Session, sessions: outbox.SessionFactory, deliver: Callable[[], outbox.DeliveryReport]
) -> None:
    [person] = _publish_deaths(city, 1)
    service.publish_event(city, PUBLIC_SECURITY, data=event("death", person))
    first = deliver()
    tasks_before, told_before = len(tasks(city, person)), len(told(city, person))
    # A worker whose lease ran out while it worked: its entry is claimed and delivered again.
    city.execute(
        update(OutboxEntry)
        .where(OutboxEntry.topic == "life_event.death")
        .values(state="claimed", claimed_until=utcnow() - timedelta(seconds=1))
    )

    again = deliver()

    assert first.applied >= 5
    death_consumers = len(REGISTRY.for_topic("life_event.death"))
    assert (again.claimed, again.applied, again.already_applied) == (1, 0, death_consumers)
    assert (len(tasks(city, person)), len(told(city, person))) == (tasks_before, told_before)
    assert set(_deliveries(city).values()) == {1}


def test_a_failing_consumer_is_retried_later_and_the_others_apply_once(
    city: Session, sessions: outbox.SessionFactory
) -> None:
    person = resident(city, home=flat(city))
    service.publish_event(city, PUBLIC_SECURITY, data=event("move_out", person))
    city.flush()
    calls: Counter[str] = Counter()
    flaky = outbox.ConsumerRegistry()

    @flaky.consumer("steady", topics=["life_event.move_out"])
    def _steady(_session: Session, _message: outbox.Message) -> None:
        calls["steady"] += 1

    @flaky.consumer("flaky", topics=["life_event.move_out"])
    def _flaky(_session: Session, _message: outbox.Message) -> None:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise ConnectionError("the receiver is down")

    start = utcnow()
    first = outbox.run_once(sessions, worker_id="w", registry=flaky, now=start)
    [entry] = [e for e in _entries(city) if e.topic == "life_event.move_out"]
    assert (first.failed, entry.state.value, entry.attempts) == (1, "pending", 1)
    assert entry.last_error == "flaky: ConnectionError"
    # Not before the backoff has passed ...
    assert outbox.run_once(sessions, worker_id="w", registry=flaky, now=start).claimed == 0
    later = start + timedelta(minutes=1)
    outbox.run_once(sessions, worker_id="w", registry=flaky, now=later)
    outbox.run_once(sessions, worker_id="w", registry=flaky, now=later + timedelta(minutes=1))

    [entry] = [e for e in _entries(city) if e.topic == "life_event.move_out"]
    assert entry.state.value == "delivered"
    assert calls == Counter({"steady": 1, "flaky": 3})


def test_an_entry_that_keeps_failing_goes_dead_and_stops_holding_back_the_next(
    city: Session, sessions: outbox.SessionFactory
) -> None:
    person = resident(city, home=flat(city), marital_status="married")
    service.publish_event(city, PUBLIC_SECURITY, data=event("move_out", person))
    service.publish_event(
        city,
        FAMILY_PLANNING,
        data=event("marriage_status_changed", person, marital_status="divorced"),
    )
    city.flush()
    broken = outbox.ConsumerRegistry()
    seen: list[str] = []

    @broken.consumer("broken", topics=["life_event.move_out", "life_event.marriage_status_changed"])
    def _broken(_session: Session, message: outbox.Message) -> None:
        seen.append(message.topic)
        if message.topic == "life_event.move_out":
            raise RuntimeError("bug")

    moment = utcnow()
    for _ in range(3):
        outbox.run_once(sessions, worker_id="w", registry=broken, now=moment, max_attempts=2)
        moment += timedelta(hours=1)

    states = {e.topic: e.state.value for e in _entries(city)}
    assert states["life_event.move_out"] == "dead"
    assert states["life_event.marriage_status_changed"] == "delivered"
    assert seen == [
        "life_event.move_out",
        "life_event.move_out",
        "life_event.marriage_status_changed",
    ]


def test_one_person_s_entries_are_delivered_in_order(
    city: Session, sessions: outbox.SessionFactory
) -> None:
    home = flat(city)
    person, other = resident(city, home=home), resident(city, home=home)
    moves = [(person, "2026-03-01"), (person, "2026-03-02"), (other, "2026-03-01")]
    for subject, day in moves:
        kind = "move_in" if day == "2026-03-02" else "move_out"
        unit = {"unit_id": flat(city, number="9" + day[-1]).id} if kind == "move_in" else {}
        service.publish_event(
            city,
            PUBLIC_SECURITY,
            data=event(kind, subject, occurred_at=f"{day}T10:00:00+08:00", **unit),
        )
    city.flush()

    claimed = outbox.claim(sessions, worker_id="w", batch=10)

    entries = {e.id: e for e in _entries(city) if e.topic.startswith("life_event.move")}
    assert len(entries) == 3
    people = [entries[entry_id].subject_person_id for entry_id in claimed]
    assert sorted(people) == sorted([person.id, other.id])  # person's second waits its turn


# ----------------------------------------------------------------------------- chunks
#
# A chunk's entries go to each consumer together (one savepoint, its delivery records in one
# executemany, the batch handler once); when that fails, one savepoint per entry isolates the
# failing one.


def _deaths_of(city: Session, people: list[Person]) -> None:
    for person in people:
        service.publish_event(city, PUBLIC_SECURITY, data=event("death", person))
    city.flush()


def _entry_of(city: Session, person: Person) -> OutboxEntry:
    [entry] = [
        e
        for e in _entries(city)
        if e.topic == "life_event.death" and e.subject_person_id == person.id
    ]
    return entry


def test_a_batch_handler_failing_on_one_entry_fails_only_that_entry_and_retries_only_it(
    city: Session, sessions: outbox.SessionFactory, deliver: Callable[[], outbox.DeliveryReport]
) -> None:
    people = _publish_deaths(city, 3)
    deliver()
    _deaths_of(city, people)
    broken = {people[1].id}
    fragile = outbox.ConsumerRegistry([*REGISTRY])
    given: list[list[int | None]] = []

    @fragile.batch_consumer("fragile", topics=["life_event.death"])
    def _fragile(_session: Session, messages: Sequence[outbox.Message]) -> None:
        given.append([message.subject_person_id for message in messages])
        if any(message.subject_person_id in broken for message in messages):
            raise RuntimeError("bug")

    start = utcnow()
    first = outbox.run_once(sessions, worker_id="w", registry=fragile, now=start)

    ids = [person.id for person in people]
    assert given[0] == ids  # the chunk together first, then one by one
    assert sorted(given[1:]) == sorted([[person_id] for person_id in ids])
    assert (first.claimed, first.delivered, first.failed) == (3, 2, 1)
    failing = _entry_of(city, people[1])
    assert (failing.state.value, failing.last_error) == ("pending", "fragile: RuntimeError")
    assert {_entry_of(city, p).state.value for p in (people[0], people[2])} == {"delivered"}
    # The other consumers applied the failing entry too, once.
    consumers = {consumer for entry_id, consumer in _deliveries(city) if entry_id == failing.id}
    assert consumers == {c.name for c in REGISTRY.for_topic("life_event.death")}

    broken.clear()
    given.clear()
    later = outbox.run_once(
        sessions, worker_id="w", registry=fragile, now=start + timedelta(hours=1)
    )

    assert (later.claimed, later.delivered, later.applied) == (1, 1, 1)
    assert given == [[people[1].id]]
    assert _entry_of(city, people[1]).state.value == "delivered"
    assert set(_deliveries(city).values()) == {1}
    for person in people:
        assert allowance(city, person).status.value == "suspended"
        assert Counter(task.kind for task in tasks(city, person)) == Counter(
            {"allowance_review": 1, "household_head_needed": 1, "verify_death": 1}
        )
        assert Counter(entry.department for entry in told(city, person))["civil-affairs"] == 1


def test_a_handler_failing_on_one_entry_of_a_chunk_runs_once_and_the_others_commit(
    city: Session, sessions: outbox.SessionFactory
) -> None:
    homes = [flat(city, number=str(300 + n)) for n in range(3)]
    people = [resident(city, home=home) for home in homes]
    for person in people:
        service.publish_event(city, PUBLIC_SECURITY, data=event("move_out", person))
    city.flush()
    calls: Counter[int | None] = Counter()
    flaky = outbox.ConsumerRegistry()

    @flaky.consumer("flaky", topics=["life_event.move_out"])
    def _flaky(_session: Session, message: outbox.Message) -> None:
        calls[message.subject_person_id] += 1
        if message.subject_person_id == people[1].id:
            raise ConnectionError("the receiver is down")

    report = outbox.run_once(sessions, worker_id="w", registry=flaky)

    assert (report.delivered, report.failed, report.applied) == (2, 1, 2)
    assert report.errors == ["flaky: ConnectionError"]
    # The failing handler ran once; the one before it again, after the rollback.
    assert calls == Counter({people[0].id: 2, people[1].id: 1, people[2].id: 1})
    states = {e.subject_person_id: e.state.value for e in _entries(city)}
    assert [states[person.id] for person in people] == ["delivered", "pending", "delivered"]


def test_a_reaction_refused_by_the_database_on_one_entry_fails_only_that_entry(
    city: Session, sessions: outbox.SessionFactory, deliver: Callable[[], outbox.DeliveryReport]
) -> None:
    people = _publish_deaths(city, 3)
    deliver()
    _deaths_of(city, people)
    # A verification task of the second death exists already (the unique key refuses another).
    payload = _entry_of(city, people[1]).payload
    city.add(
        Task(
            assignee_kind="grid",
            assignee=people[1].grid_code,
            grid_code=people[1].grid_code,
            kind="verify_death",
            subject_person_id=people[1].id,
            due_at=utcnow(),
            created_by_event_id=payload["event_id"],
        )
    )
    city.flush()

    report = deliver()

    assert (report.delivered, report.failed) == (2, 1)
    assert report.errors == ["grid.verification: IntegrityError"]
    assert _entry_of(city, people[1]).last_error == "grid.verification: IntegrityError"
    for person in (people[0], people[2]):
        assert [task.kind for task in tasks(city, person)].count("verify_death") == 1
    assert allowance(city, people[1]).status.value == "suspended"


def test_a_chunk_with_an_entry_another_worker_applied_applies_it_once_and_the_rest(
    city: Session,
    deliver: Callable[[], outbox.DeliveryReport],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    people = _publish_deaths(city, 3)
    deliver()
    first, *others = people
    _deaths_of(city, [first])
    deliver()
    before = (len(tasks(city, first)), len(told(city, first)))
    _deaths_of(city, others)
    # The first death is delivered again (a lease that ran out under a slow worker), and
    # this worker's read of the delivery records missed what the other worker wrote.
    city.execute(
        update(OutboxEntry)
        .where(OutboxEntry.id == _entry_of(city, first).id)
        .values(state="claimed", claimed_until=utcnow() - timedelta(seconds=1))
    )
    monkeypatch.setattr(outbox.repository, "delivered_consumers", lambda _session, *, entry_ids: {})

    report = deliver()

    consumers = len(REGISTRY.for_topic("life_event.death"))
    assert (report.claimed, report.delivered, report.failed) == (3, 3, 0)
    assert (report.applied, report.already_applied) == (2 * consumers, consumers)
    assert (len(tasks(city, first)), len(told(city, first))) == before
    assert set(_deliveries(city).values()) == {1}
    for person in others:
        assert allowance(city, person).status.value == "suspended"
        assert Counter(task.kind for task in tasks(city, person)) == Counter(
            {"allowance_review": 1, "household_head_needed": 1, "verify_death": 1}
        )


def test_a_chunk_holds_at_most_one_entry_per_person_and_each_person_s_in_order(
    city: Session, sessions: outbox.SessionFactory
) -> None:
    people = [resident(city, home=flat(city, number=str(400 + n))) for n in range(3)]
    for day in ("2026-03-01", "2026-03-02", "2026-03-03"):
        for person in people:
            service.publish_event(
                city,
                FAMILY_PLANNING,
                data=event(
                    "marriage_status_changed",
                    person,
                    occurred_at=f"{day}T10:00:00+08:00",
                    marital_status="married" if day.endswith("2") else "divorced",
                ),
            )
    city.flush()
    chunks: list[list[int | None]] = []
    seen: list[tuple[int | None, int]] = []
    recorder = outbox.ConsumerRegistry()

    @recorder.batch_consumer("recorder", topics=["life_event.marriage_status_changed"])
    def _record(_session: Session, messages: Sequence[outbox.Message]) -> None:
        chunks.append([message.subject_person_id for message in messages])
        seen.extend((message.subject_person_id, message.entry_id) for message in messages)

    outbox.drain(sessions, worker_id="w", registry=recorder)

    assert len(chunks) == 3
    assert all(sorted(chunk) == sorted(p.id for p in people) for chunk in chunks)
    for person in people:
        entries = [entry_id for person_id, entry_id in seen if person_id == person.id]
        assert entries == sorted(entries) and len(entries) == 3
