"""The rules of the exchange: members and the catalogue, department-held datasets, and life
events with their idempotency and ordering. See docs/exchange.md for the full story.

Publishing a life event, in one transaction:

1. the event is validated (its schema, then the publisher: only the department that owns
   the type may publish it, 403 naming the type);
2. its key (department, ``source_event_id``) is claimed by inserting the event row; a key
   already taken answers with the first answer (same status and body) and changes nothing,
   unless the content differs (409);
3. the subject is looked up (unknown ID number: 422 naming ``id_number``) and the person's
   clock row is locked, so events about one person are decided one at a time;
4. the event is applied to the publisher's own facts (the registry, or the publisher's
   dataset) unless newer facts exist: an event older than the latest applied event of the
   same aspect of the person (``residence``, ``marital``, ``tenancy:<unit>``), or an event
   about a person already dead, is recorded with ``applied=false`` and a reason, and
   changes nothing else;
5. an applied event writes its outbox entry; the reactions (other departments' data, tasks,
   "told" audit entries) follow through the outbox (``reactions.py``).

Any error raises before the caller commits, so nothing is changed (the caller rolls back).

A batch (``publish_events``) publishes each event this way in a savepoint of its own, after
locking and reading all its subjects at once; what no event of the batch reads back (answers,
clocks, outbox entries, history and access-log rows) is written once at its end
(``_Publishing``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from operator import attrgetter, itemgetter
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from citygrid.access import consent as consent_store
from citygrid.access import gateway
from citygrid.access.policy import Level
from citygrid.audit import service as audit
from citygrid.exchange import outbox, repository, sources
from citygrid.exchange.catalogue import Catalogue, DatasetSpec, default_catalogue
from citygrid.exchange.events import (
    BirthEvent,
    DeathEvent,
    LifeEventBase,
    MarriageStatusChangedEvent,
    MoveInEvent,
    MoveOutEvent,
    TenancyEndedEvent,
    TenancyStartedEvent,
    parse_event,
)
from citygrid.exchange.models import (
    AllowanceRecord,
    AllowanceStatus,
    AssigneeKind,
    ImportJob,
    ImportPhase,
    MaritalRecord,
    Member,
    Task,
    TaskState,
    TenancyRecord,
    TenancyStatus,
)
from citygrid.exchange.schemas import ROW_MODELS as ROW_SHAPES
from citygrid.exchange.schemas import (
    CatalogueRead,
    DatasetRead,
    EventAnswer,
    EventTypeRead,
    FieldRead,
    MemberCreate,
    MemberRead,
    PublishMode,
    PublishReport,
    RecordsPublish,
    RowProblem,
    TaskRead,
)
from citygrid.kit.actor import Actor
from citygrid.kit.clock import CHINA_STANDARD_TIME, local_date, local_today
from citygrid.kit.errors import CitygridError, Conflict, Forbidden, NotFound, ValidationFailed
from citygrid.kit.i18n import _, localised
from citygrid.kit.models import utcnow
from citygrid.registry import service as registry
from citygrid.registry.models import (
    LifeStatus,
    MaritalStatus,
    Person,
    ResidenceKind,
)
from citygrid.registry.schemas import parse, validation_failed

ACCEPTED = 202

#: Why an event was recorded but not applied.
SUPERSEDED = "superseded"  # newer facts of the same aspect exist
SUBJECT_DECEASED = "subject_deceased"  # the person died before it happened
ALREADY_DECEASED = "already_deceased"  # a second death
NO_OPEN_RESIDENCE = "no_open_residence"  # a move out of nowhere
NO_ACTIVE_TENANCY = "no_active_tenancy"  # the end of a tenancy not on record
NO_CHANGE = "no_change"  # the state already says so (a move into the flat one lives in)

MARITAL_ASPECT = "marital"  # the clock of marriage_status_changed (see _Subject)


# ============================================================================ members, catalogue


def sync_members(session: Session, *, catalogue: Catalogue | None = None) -> int:
    """Add the catalogue's members missing from the table and update changed names and
    contacts; returns how many rows changed. Members added by CLI are kept."""
    catalogue = catalogue or default_catalogue()
    existing = {member.slug: member for member in repository.list_members(session)}
    changed = 0
    for spec in catalogue.members:
        values = {"name_zh": spec.name_zh, "name_en": spec.name_en, "contact": spec.contact}
        member = existing.get(spec.slug)
        if member is None:
            repository.add_member(session, {"slug": spec.slug, **values})
            changed += 1
        elif any(getattr(member, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(member, key, value)
            changed += 1
    session.flush()
    return changed


def add_member(session: Session, actor: Actor, *, data: MemberCreate | Mapping[str, Any]) -> Member:
    """Add a member department (409 when the slug is taken)."""
    values = parse(MemberCreate, data)
    if repository.member_by_slug(session, slug=values.slug) is not None:
        raise Conflict(
            _("slug: already a member"),
            details=[{"field": "slug", "reason": _("already a member")}],
        )
    return repository.add_member(session, values.model_dump())


def list_members(session: Session) -> list[Member]:
    """Every member department, by slug."""
    return repository.list_members(session)


def catalogue_read(session: Session, *, catalogue: Catalogue | None = None) -> CatalogueRead:
    """The catalogue in the current language: members (from the table), datasets, event types."""
    catalogue = catalogue or default_catalogue()
    datasets_of: dict[str, list[str]] = {}
    for dataset in catalogue.datasets.values():
        datasets_of.setdefault(dataset.owner, []).append(dataset.slug)
    events_of: dict[str, list[str]] = {}
    for event_type in catalogue.events.values():
        events_of.setdefault(event_type.owner, []).append(event_type.type)
    return CatalogueRead(
        version=catalogue.version,
        members=[
            MemberRead(
                slug=member.slug,
                name=localised(member.name_zh, member.name_en),
                name_zh=member.name_zh,
                name_en=member.name_en,
                contact=member.contact,
                datasets=datasets_of.get(member.slug, []),
                event_types=events_of.get(member.slug, []),
            )
            for member in repository.list_members(session)
        ],
        datasets=[_dataset_read(dataset) for dataset in catalogue.datasets.values()],
        event_types=[
            EventTypeRead(
                type=spec.type,
                owner=spec.owner,
                name=localised(spec.name_zh, spec.name_en),
                name_zh=spec.name_zh,
                name_en=spec.name_en,
                topic=spec.topic,
            )
            for spec in catalogue.events.values()
        ],
    )


def _dataset_read(dataset: DatasetSpec) -> DatasetRead:
    return DatasetRead(
        slug=dataset.slug,
        owner=dataset.owner,
        name=localised(dataset.name_zh, dataset.name_en),
        name_zh=dataset.name_zh,
        name_en=dataset.name_en,
        classification=dataset.classification.value,
        frequency=dataset.frequency,
        max_age_days=dataset.max_age_days,
        field_classes=list(dataset.field_classes),
        fields=[
            FieldRead(
                name=spec.name,
                type=spec.type,
                values=list(spec.values),
                field_class=spec.field_class,
                label=localised(spec.name_zh, spec.name_en),
                label_zh=spec.name_zh,
                label_en=spec.name_en,
            )
            for spec in dataset.fields
        ],
    )


def last_published(session: Session) -> dict[str, datetime]:
    """Per dataset, when its owner last published a batch with an accepted row (UTC)."""
    return {slug: _utc(moment) for slug, moment in repository.last_publications(session).items()}


def dataset_spec(slug: str, *, catalogue: Catalogue | None = None) -> DatasetSpec:
    """The catalogue entry of a dataset; NotFound for an unknown slug."""
    spec = (catalogue or default_catalogue()).dataset(slug)
    if spec is None:
        raise NotFound(_("No such dataset."))
    return spec


def _publisher(actor: Actor) -> str:
    if not actor.department:
        raise Forbidden(_("Only a member department may publish."))
    return actor.department


# ============================================================================ life events


@dataclass(frozen=True)
class PublishOutcome:
    """The answer to a publish: its HTTP status and body; ``replayed`` when the key had
    been published before (the answer is the first one)."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass
class _Outcome:
    """What applying an event did."""

    person: Person | None
    applied: bool
    reason: str | None = None
    messages: list[outbox.OutboxMessage] = field(default_factory=list)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _unknown(field_name: str) -> ValidationFailed:
    return ValidationFailed.one(field_name, _("no person with this ID number is registered"))


_PUBLISHING = "citygrid.exchange.publishing"
# Events that read a person's current residences: a batch holding any reads them all at once.
_RESIDENCE_EVENTS = (DeathEvent, MoveInEvent, MoveOutEvent)
# Events whose appliers read nothing but what a batch reads up front (``prefetch``).
_PREFETCHED_EVENTS = (
    MoveInEvent,
    MoveOutEvent,
    MarriageStatusChangedEvent,
    TenancyStartedEvent,
    TenancyEndedEvent,
)


class _Publishing:
    """What the events of one publish (a single event, or a batch) share in its transaction.

    A batch reads its subjects, their clocks (locked) and its housing units with a few
    statements up front (``prefetch``) instead of a few per event, and holds the writes that
    nothing in the batch reads back (event answers, clocks, the regridding of dataset rows,
    outbox entries) to write them at the end, one executemany each (``write``). A refused
    event of a batch rolls its savepoint back and ``restore`` forgets what it left here.
    Persons and units not prefetched (a newborn of the same batch) are looked up one by one.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.sqlite = session.get_bind().dialect.name == "sqlite"
        self.persons: dict[str, Person] = {}
        self.units: dict[int, str | None] = {}
        # person id -> the residences that have not ended, kept current by the batch's moves
        self.residences: dict[int, list[registry.ResidenceRow]] = {}
        # person id -> marital record (None: none yet); (person id, unit id) -> tenancies
        self.marital: dict[int, MaritalRecord | None] = {}
        self.tenancies: dict[tuple[int, int], list[TenancyRecord]] = {}
        self.clocks: dict[int, dict[str, str]] = {}
        self.dirty_clocks: set[int] = set()
        self.regrid: dict[int, str] = {}
        self.finished: list[dict[str, Any]] = []
        self.messages: list[outbox.OutboxMessage] = []
        # (department, source_event_id) -> (fingerprint, answer) of this publish's events
        self.answers: dict[tuple[str, str], tuple[str, PublishOutcome]] = {}
        # Keys claimed up front for a whole batch (``claim_keys``): source event id ->
        # (event id, received at); None when each event claims its own key.
        self.claims: dict[str, tuple[int, datetime]] | None = None
        self.log = registry.WriteLog()  # the registry's, set by ``_publish_scope``

    def prefetch(self, events: Sequence[LifeEventBase]) -> None:
        """Lock the clocks of the events' subjects (in person id order: two batches never
        wait for each other in a circle), then read the subjects and the housing units."""
        session = self.session
        id_numbers = sorted(
            {event.id_number for event in events}
            | {event.parent_id_number for event in events if isinstance(event, BirthEvent)}
        )
        if self.sqlite:
            # A write first: a SQLite transaction that read before its first write fails
            # when another writer commits in between.
            repository.take_write_lock(session)
        keys = registry.person_keys(session, id_numbers=id_numbers)
        person_ids = sorted(key.id for key in keys.values())
        self.clocks.update(repository.lock_subjects(session, person_ids=person_ids))
        # Read under the lock: a publish about the person that committed while this one
        # waited has changed it.
        for person in registry.persons_by_id_numbers(
            session, id_numbers=list(keys), refresh=not self.sqlite
        ):
            self.persons[person.id_number] = person
        if any(isinstance(event, _RESIDENCE_EVENTS) for event in events):
            self.residences.update(registry.current_residence_rows(session, person_ids=person_ids))
        self._prefetch_held(events, keys)
        unit_ids = sorted(
            {unit_id for event in events if (unit_id := getattr(event, "unit_id", None))}
        )
        found = registry.unit_grid_codes(session, unit_ids=unit_ids)
        self.units.update({unit_id: found.get(unit_id) for unit_id in unit_ids})

    def person(self, id_number: str, field_name: str = "id_number") -> Person:
        """The person holding the ID number; 422 naming the field when there is none."""
        person = self.persons.get(id_number)
        if person is None:
            try:
                person = registry.person_by_id_number(self.session, id_number=id_number)
            except NotFound:
                raise _unknown(field_name) from None
            self.persons[id_number] = person
        return person

    def lock(self, person: Person) -> dict[str, str]:
        """The person's clocks, locked for the rest of the transaction."""
        clocks = self.clocks.get(person.id)
        if clocks is None:
            clocks = self.clocks[person.id] = repository.lock_subject(
                self.session, person_id=person.id
            )
            if not self.sqlite:
                # Read again under the lock (see ``prefetch``). On SQLite this transaction
                # has held the one writer lock since its first write: what it read is current.
                self.session.refresh(person)
        return clocks

    def advance(self, person: Person, aspect: str, moment: str) -> None:
        """Record ``moment`` as the latest applied event of an aspect of the person."""
        self.clocks[person.id] = {**self.clocks[person.id], aspect: moment}
        self.dirty_clocks.add(person.id)

    def _prefetch_held(
        self, events: Sequence[LifeEventBase], keys: Mapping[str, registry.PersonKey]
    ) -> None:
        """Read the marital records and tenancies the batch's events change."""
        married = sorted(
            {
                keys[event.id_number].id
                for event in events
                if isinstance(event, MarriageStatusChangedEvent) and event.id_number in keys
            }
        )
        if married:
            self.marital.update(dict.fromkeys(married))
            for record in repository.marital_records_of(self.session, person_ids=married):
                self.marital[record.person_id] = record
        pairs = sorted(
            {
                (keys[event.id_number].id, event.unit_id)
                for event in events
                if isinstance(event, TenancyStartedEvent | TenancyEndedEvent)
                and event.id_number in keys
            }
        )
        if pairs:
            self.tenancies.update({pair: [] for pair in pairs})
            for tenancy in repository.tenancies_of_pairs(self.session, pairs=pairs):
                self.tenancies[(tenancy.person_id, tenancy.unit_id)].append(tenancy)

    def marital_record(self, person: Person) -> MaritalRecord | None:
        """The person's marital record, as this publish left it."""
        if person.id not in self.marital:
            self.marital[person.id] = repository.marital_record_of(
                self.session, person_id=person.id
            )
        return self.marital[person.id]

    def tenancies_at(self, person: Person, unit_id: int) -> list[TenancyRecord]:
        """Every tenancy of the person in the unit, oldest first, as this publish left them."""
        key = (person.id, unit_id)
        if key not in self.tenancies:
            self.tenancies[key] = repository.tenancies_of_pairs(self.session, pairs=[key])
        return self.tenancies[key]

    def current_residences(self, person: Person) -> list[registry.ResidenceRow]:
        """The person's residences that have not ended, oldest first (as this publish left
        them)."""
        residences = self.residences.get(person.id)
        if residences is None:
            found = registry.current_residence_rows(self.session, person_ids=[person.id])
            residences = self.residences[person.id] = found[person.id]
        return residences

    def set_residences(self, person: Person, residences: list[registry.ResidenceRow]) -> None:
        """What the person's residences that have not ended are now (a new list: a
        ``checkpoint`` holds the old one)."""
        self.residences[person.id] = residences

    def unit_grid(self, unit_id: int) -> str | None:
        """The housing unit's grid, or None when there is no such unit."""
        if unit_id not in self.units:
            found = registry.unit_grid_codes(self.session, unit_ids=[unit_id])
            self.units[unit_id] = found.get(unit_id)
        return self.units[unit_id]

    def claim_keys(self, actor: Actor, department: str, events: Sequence[LifeEventBase]) -> None:
        """Claim the keys of a batch's events in one statement (``_publish`` then takes its
        event's id from here; a key claimed before answers with its first answer)."""
        received_at = utcnow()
        claimed = repository.claim_event_keys(
            self.session,
            [
                {
                    "type": event.type,  # type: ignore[attr-defined]
                    "department": department,
                    "publisher": actor.name,
                    "source_event_id": event.source_event_id,
                    "payload_hash": event.fingerprint(),
                    "occurred_at": _utc(event.occurred_at),
                    "received_at": received_at,
                }
                for event in events
            ],
        )
        self.claims = {key: (event_id, received_at) for key, event_id in claimed.items()}

    def checkpoint(self) -> tuple[Any, ...]:
        """Where the publish stands, for ``restore``."""
        return (
            dict(self.answers),
            dict(self.persons),
            dict(self.residences),
            dict(self.marital),
            dict(self.tenancies),
            dict(self.clocks),
            set(self.dirty_clocks),
            dict(self.regrid),
            len(self.finished),
            len(self.messages),
        )

    def restore(self, mark: tuple[Any, ...]) -> None:
        """Forget what an event rolled back with its savepoint left here."""
        answers, persons, residences, marital, tenancies, *rest = mark
        clocks, dirty, regrid, finished, messages = rest
        self.answers, self.marital, self.tenancies = answers, marital, tenancies
        self.persons, self.residences, self.clocks = persons, residences, clocks
        self.dirty_clocks, self.regrid = dirty, regrid
        del self.finished[finished:]
        del self.messages[messages:]

    def write(self) -> None:
        """Write what was held: answers, clocks, regridded rows, outbox entries."""
        session = self.session
        repository.finish_events(session, self.finished)
        repository.save_clocks_many(
            session,
            {person_id: self.clocks[person_id] for person_id in sorted(self.dirty_clocks)},
        )
        repository.regrid_persons(session, self.regrid)
        outbox.enqueue(session, self.messages)


def _publishing(session: Session) -> _Publishing:
    publishing: _Publishing | None = session.info.get(_PUBLISHING)
    if publishing is None:
        raise RuntimeError("life events are applied inside publish_event / publish_events")
    return publishing


@contextmanager
def _publish_scope(session: Session) -> Iterator[_Publishing]:
    """The shared state of one publish; its held writes are written when the block ends
    without an error (with the registry's history rows and access-log entries). Inside an
    outer publish, the outer one's."""
    outer: _Publishing | None = session.info.get(_PUBLISHING)
    if outer is not None:
        yield outer
        return
    publishing = session.info[_PUBLISHING] = _Publishing(session)
    try:
        with registry.batched_write_log(session) as log:
            publishing.log = log
            yield publishing
            publishing.write()
    finally:
        session.info.pop(_PUBLISHING, None)


def _check_unit(session: Session, unit_id: int | None) -> str | None:
    """The unit's grid; 422 naming ``unit_id`` when there is no such unit."""
    if unit_id is None:
        return None
    grid_code = _publishing(session).unit_grid(unit_id)
    if grid_code is None:
        raise ValidationFailed.one("unit_id", _("no such housing unit"))
    return grid_code


class _Subject:
    """The person an event is about, locked for the rest of the transaction, with the clocks
    of the aspects of their life."""

    def __init__(self, session: Session, id_number: str, field_name: str = "id_number") -> None:
        self.publishing = _publishing(session)
        self.person = self.publishing.person(id_number, field_name)
        self.clocks = self.publishing.lock(self.person)

    def blocked(self, event: LifeEventBase, aspect: str | None) -> str | None:
        """Why the event cannot apply (newer facts, or the person is dead), or None."""
        person = self.person
        if person.status is LifeStatus.DECEASED and person.died_on is not None:
            # Death is the newest fact about every aspect of a life.
            return SUPERSEDED if event.occurred_on <= person.died_on else SUBJECT_DECEASED
        if aspect is not None:
            latest = self.clocks.get(aspect)
            if latest is not None and _utc(event.occurred_at) < datetime.fromisoformat(latest):
                return SUPERSEDED
        return None

    def advance(self, aspect: str, event: LifeEventBase) -> None:
        """Record the event as the latest applied one of the aspect."""
        self.publishing.advance(self.person, aspect, _utc(event.occurred_at).isoformat())


def _message(
    event: LifeEventBase, event_id: int, person: Person, **facts: Any
) -> outbox.OutboxMessage:
    payload = {
        "event_id": event_id,
        "type": event.type,  # type: ignore[attr-defined]
        "person_ref": person.ref,
        "occurred_at": _utc(event.occurred_at).isoformat(),
        **facts,
    }
    return outbox.OutboxMessage(
        topic=f"life_event.{event.type}",  # type: ignore[attr-defined]
        payload=payload,
        subject_person_id=person.id,
        subject_grid_code=person.grid_code,
    )


def _apply_death(session: Session, actor: Actor, event: DeathEvent, event_id: int) -> _Outcome:
    subject = _Subject(session, event.id_number)
    person = subject.person
    if person.status is LifeStatus.DECEASED:
        return _Outcome(person, applied=False, reason=ALREADY_DECEASED)
    died_on = event.occurred_on
    if died_on < person.birth_date:
        raise ValidationFailed.one("occurred_at", _("before the person's birth"))
    household_id = person.household_id
    was_head = person.relation_to_head == "head"
    registry.mark_deceased(session, actor, person_id=person.id, died_on=died_on)
    if household_id is not None:
        registry.update_person(
            session,
            actor,
            person_id=person.id,
            data={"household_id": None, "relation_to_head": None},
        )
    publishing = _publishing(session)
    registry.end_residences(
        session,
        actor,
        person=person,
        ends=[
            (residence, max(died_on, residence.since))
            for residence in publishing.current_residences(person)
        ],
    )
    publishing.set_residences(person, [])
    message = _message(
        event,
        event_id,
        person,
        died_on=died_on.isoformat(),
        household_id=household_id,
        was_head=was_head,
    )
    return _Outcome(person, applied=True, messages=[message])


# A newborn's relation to the head of household, from the parent's relation to the head.
_CHILD_RELATION = {
    "head": "child",
    "spouse": "child",
    "child": "grandchild",
    "child_in_law": "grandchild",
    "grandchild": "other",
    "parent": "sibling",
    "parent_in_law": "other",
    "grandparent": "other",
    "sibling": "other",
    "other": "other",
}


def _apply_birth(session: Session, actor: Actor, event: BirthEvent, event_id: int) -> _Outcome:
    parent = _publishing(session).person(event.parent_id_number, "parent_id_number")
    household_id = parent.household_id
    relation = None
    if household_id is not None and parent.relation_to_head is not None:
        relation = _CHILD_RELATION.get(parent.relation_to_head, "other")
    child = registry.create_person(
        session,
        actor,
        data={
            "grid_code": parent.grid_code,
            "id_number": event.id_number,
            "name": event.name,
            "sex": event.sex,
            "ethnicity": event.ethnicity,
            "population_type": "registered",
            "household_id": household_id,
            "relation_to_head": relation if household_id is not None else None,
        },
    )
    message = _message(event, event_id, child, household_id=household_id)
    return _Outcome(child, applied=True, messages=[message])


def _leave_other_grid(
    session: Session, actor: Actor, person: Person, grid_code: str
) -> dict[str, Any]:
    """Move the person to ``grid_code``; a household in the old grid is left (a household
    lies in its members' grid). Returns the facts the reactions need."""
    facts: dict[str, Any] = {"left_household_id": None, "was_head": False}
    if grid_code == person.grid_code:
        return facts
    if person.household_id is not None:
        facts = {
            "left_household_id": person.household_id,
            "was_head": person.relation_to_head == "head",
        }
    registry.move_person_to_grid(session, actor, person=person, grid_code=grid_code)
    # The person's dataset rows and open tasks follow, when the publish ends.
    _publishing(session).regrid[person.id] = grid_code
    return facts


def _apply_move_in(session: Session, actor: Actor, event: MoveInEvent, event_id: int) -> _Outcome:
    unit_grid = _check_unit(session, event.unit_id)
    assert unit_grid is not None  # noqa: S101 - a move in always names its unit
    subject = _Subject(session, event.id_number)
    person = subject.person
    reason = subject.blocked(event, "residence")
    if reason is not None:
        return _Outcome(person, applied=False, reason=reason)
    kind = ResidenceKind(event.kind)
    publishing = _publishing(session)
    current = publishing.current_residences(person)
    same_kind = [residence for residence in current if residence.kind is kind]
    if any(residence.unit_id == event.unit_id for residence in same_kind):
        return _Outcome(person, applied=False, reason=NO_CHANGE)
    day = event.occurred_on
    registry.end_residences(
        session,
        actor,
        person=person,
        ends=[(residence, max(day, residence.since)) for residence in same_kind],
    )
    residence = registry.open_residence(
        session,
        actor,
        person=person,
        unit_id=event.unit_id,
        grid_code=unit_grid,
        kind=kind,
        since=day,
    )
    publishing.set_residences(
        person, [held for held in current if held.kind is not kind] + [residence]
    )
    from_grid = person.grid_code
    facts = _leave_other_grid(session, actor, person, unit_grid)
    subject.advance("residence", event)
    message = _message(
        event,
        event_id,
        person,
        unit_id=event.unit_id,
        residence_id=residence.id,
        grid_codes=sorted({from_grid, unit_grid}),
        **facts,
    )
    return _Outcome(person, applied=True, messages=[message])


def _apply_move_out(session: Session, actor: Actor, event: MoveOutEvent, event_id: int) -> _Outcome:
    _check_unit(session, event.unit_id)
    subject = _Subject(session, event.id_number)
    person = subject.person
    reason = subject.blocked(event, "residence")
    if reason is not None:
        return _Outcome(person, applied=False, reason=reason)
    day = event.occurred_on
    kind = ResidenceKind(event.kind)
    publishing = _publishing(session)
    current = publishing.current_residences(person)
    closing = [
        residence
        for residence in current
        if residence.kind is kind
        and (event.unit_id is None or residence.unit_id == event.unit_id)
        and residence.since <= day
    ]
    if not closing:
        return _Outcome(person, applied=False, reason=NO_OPEN_RESIDENCE)
    registry.end_residences(
        session, actor, person=person, ends=[(residence, day) for residence in closing]
    )
    publishing.set_residences(person, [held for held in current if held not in closing])
    subject.advance("residence", event)
    message = _message(
        event,
        event_id,
        person,
        residence_ids=[residence.id for residence in closing],
        unit_ids=sorted({residence.unit_id for residence in closing}),
        grid_codes=sorted({residence.grid_code for residence in closing} | {person.grid_code}),
    )
    return _Outcome(person, applied=True, messages=[message])


def _apply_marriage(
    session: Session, actor: Actor, event: MarriageStatusChangedEvent, event_id: int
) -> _Outcome:
    subject = _Subject(session, event.id_number)
    person = subject.person
    reason = subject.blocked(event, "marital")
    if reason is not None:
        return _Outcome(person, applied=False, reason=reason)
    day = event.occurred_on
    publishing = _publishing(session)
    record = publishing.marital_record(person)
    if record is None:
        record = MaritalRecord(
            person_id=person.id,
            grid_code=person.grid_code,
            marital_status=event.marital_status,
            since=day,
            changed_by=actor.name,
        )
        session.add(record)
        publishing.marital[person.id] = record
    else:
        record.marital_status = event.marital_status
        record.since = day
        record.changed_by = actor.name
    registry.set_marital_statuses(session, actor, statuses={person.id: event.marital_status})
    subject.advance("marital", event)
    # The status itself is personal data (field class ``marital``): consumers re-read it.
    return _Outcome(person, applied=True, messages=[_message(event, event_id, person)])


def _apply_tenancy_started(
    session: Session, actor: Actor, event: TenancyStartedEvent, event_id: int
) -> _Outcome:
    _check_unit(session, event.unit_id)
    subject = _Subject(session, event.id_number)
    person = subject.person
    aspect = f"tenancy:{event.unit_id}"
    reason = subject.blocked(event, aspect)
    if reason is not None:
        return _Outcome(person, applied=False, reason=reason)
    day = event.occurred_on
    publishing = _publishing(session)
    held = publishing.tenancies_at(person, event.unit_id)
    existing = next((tenancy for tenancy in held if tenancy.since == day), None)
    if existing is not None and existing.status is TenancyStatus.ACTIVE:
        return _Outcome(person, applied=False, reason=NO_CHANGE)
    if existing is None:
        tenancy = TenancyRecord(
            person_id=person.id,
            unit_id=event.unit_id,
            grid_code=person.grid_code,
            since=day,
            until=event.until,
            status=TenancyStatus.ACTIVE,
            changed_by=actor.name,
        )
        session.add(tenancy)
        # A new list: a ``checkpoint`` holds the old one.
        publishing.tenancies[(person.id, event.unit_id)] = sorted(
            [*held, tenancy], key=lambda held_tenancy: held_tenancy.since
        )
    else:
        tenancy = existing
        tenancy.until, tenancy.status, tenancy.changed_by = (
            event.until,
            TenancyStatus.ACTIVE,
            actor.name,
        )
    session.flush()
    subject.advance(aspect, event)
    message = _message(event, event_id, person, unit_id=event.unit_id, tenancy_id=tenancy.id)
    return _Outcome(person, applied=True, messages=[message])


def _apply_tenancy_ended(
    session: Session, actor: Actor, event: TenancyEndedEvent, event_id: int
) -> _Outcome:
    _check_unit(session, event.unit_id)
    subject = _Subject(session, event.id_number)
    person = subject.person
    aspect = f"tenancy:{event.unit_id}"
    reason = subject.blocked(event, aspect)
    if reason is not None:
        return _Outcome(person, applied=False, reason=reason)
    day = event.occurred_on
    ending = [
        tenancy
        for tenancy in _publishing(session).tenancies_at(person, event.unit_id)
        if tenancy.status is TenancyStatus.ACTIVE and tenancy.since <= day
    ]
    if not ending:
        return _Outcome(person, applied=False, reason=NO_ACTIVE_TENANCY)
    for tenancy in ending:
        tenancy.until, tenancy.status, tenancy.changed_by = day, TenancyStatus.ENDED, actor.name
    subject.advance(aspect, event)
    message = _message(
        event, event_id, person, unit_id=event.unit_id, tenancy_ids=[t.id for t in ending]
    )
    return _Outcome(person, applied=True, messages=[message])


_Applier = Callable[[Session, Actor, Any, int], _Outcome]

#: Event type -> how it changes the publisher's own facts.
APPLIERS: dict[str, _Applier] = {
    "birth": _apply_birth,
    "death": _apply_death,
    "move_in": _apply_move_in,
    "move_out": _apply_move_out,
    "marriage_status_changed": _apply_marriage,
    "tenancy_started": _apply_tenancy_started,
    "tenancy_ended": _apply_tenancy_ended,
}


def publish_event(
    session: Session,
    actor: Actor,
    *,
    data: LifeEventBase | Mapping[str, Any],
    catalogue: Catalogue | None = None,
) -> PublishOutcome:
    """Publish a life event (see the module's docstring): the answer, the same every time."""
    with _publish_scope(session):
        return _publish(session, actor, data, catalogue or default_catalogue())


def _publish(
    session: Session, actor: Actor, data: LifeEventBase | Mapping[str, Any], catalogue: Catalogue
) -> PublishOutcome:
    """Publish a life event inside a publish scope (``_publish_scope``)."""
    publishing = _publishing(session)
    event = parse_event(data)
    event_type: str = event.type  # type: ignore[attr-defined]
    spec = catalogue.event_type(event_type)
    if spec is None:  # a schema without an owner: the catalogue's check prevents it
        raise ValidationFailed.one("type", _("no department owns this event type"))
    department = _publisher(actor)
    if department != spec.owner:
        raise Forbidden(
            _("Only the owning department may publish events of type %(type)s.")
            % {"type": event_type},
            details=[{"field": "type", "reason": _("owned by another department")}],
        )
    fingerprint = event.fingerprint()
    key = (department, event.source_event_id)
    earlier = publishing.answers.get(key)
    if earlier is not None:  # published earlier in this batch: its row is not finished yet
        if earlier[0] != fingerprint:
            raise _key_reused()
        return PublishOutcome(earlier[1].status_code, dict(earlier[1].body), replayed=True)
    event_id: int | None
    if publishing.claims is not None:  # claimed with the batch's other keys
        event_id, received_at = publishing.claims.pop(event.source_event_id, (None, utcnow()))
    else:
        received_at = utcnow()
        event_id = repository.claim_event_key(
            session,
            {
                "type": event_type,
                "department": department,
                "publisher": actor.name,
                "source_event_id": event.source_event_id,
                "payload_hash": fingerprint,
                "occurred_at": _utc(event.occurred_at),
                "received_at": received_at,
            },
        )
    if event_id is None:
        return _replay(session, department, event.source_event_id, fingerprint)
    with registry.deferred_flush(session):
        outcome = APPLIERS[event_type](session, actor, event, event_id)
    person = outcome.person
    answer = EventAnswer(
        event_id=event_id,
        type=event_type,
        source_event_id=event.source_event_id,
        applied=outcome.applied,
        reason=outcome.reason,
        subject=person.ref if person is not None else None,
        occurred_at=_utc(event.occurred_at),
        received_at=received_at,
    )
    body = answer.model_dump(mode="json")
    publishing.finished.append(
        {
            "event_id": event_id,
            "person_id": person.id if person is not None else None,
            "grid_code": person.grid_code if person is not None else None,
            "applied": outcome.applied,
            "reason": outcome.reason,
            "facts": event.facts(),
            "response_status": ACCEPTED,
            "response_body": body,
        }
    )
    publishing.messages.extend(outcome.messages)
    result = PublishOutcome(ACCEPTED, body)
    publishing.answers[key] = (fingerprint, result)
    return result


MAX_EVENT_BATCH = 1000
"""The most life events one batch may carry."""


@dataclass(frozen=True)
class BatchItem:
    """What became of one event of a batch: its HTTP status and body (the event's answer,
    or the error it was refused with), and ``replayed`` for a key published before."""

    index: int
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


def publish_events(
    session: Session,
    actor: Actor,
    *,
    events: Sequence[Any],
    catalogue: Catalogue | None = None,
) -> list[BatchItem]:
    """Publish a batch of life events in the caller's transaction, each exactly as
    ``publish_event`` would and with its own answer: each runs in a savepoint, so a refused
    event (4xx) changes nothing and does not stop the others; a key published before (in an
    earlier request or earlier in this batch) answers with its first answer."""
    if not isinstance(events, Sequence) or isinstance(events, str | bytes):
        raise ValidationFailed.one("events", _("must be a list of life events"))
    if not 1 <= len(events) <= MAX_EVENT_BATCH:
        raise ValidationFailed.one(
            "events",
            _("must hold 1 to %(most)d events") % {"most": MAX_EVENT_BATCH},
        )
    _publisher(actor)
    catalogue = catalogue or default_catalogue()
    parsed: list[LifeEventBase | CitygridError] = []
    for data in events:
        try:
            parsed.append(parse_event(data))
        except CitygridError as error:
            parsed.append(error)
    results: list[BatchItem] = []
    # The history rows, access-log entries, answers, clocks and outbox entries of the whole
    # batch are written at its end, one executemany each (``_Publishing``).
    with _publish_scope(session) as publishing:
        valid = [event for event in parsed if isinstance(event, LifeEventBase)]
        publishing.prefetch(valid)
        fast = _publish_together(session, actor, parsed, valid, catalogue)
        if fast is not None:
            return fast
        log = publishing.log
        for index, event in enumerate(parsed):
            if isinstance(event, CitygridError):  # malformed: it wrote nothing
                results.append(BatchItem(index, event.status_code, event.to_dict()))
                continue
            mark, log_mark = publishing.checkpoint(), log.mark()
            try:
                with session.begin_nested():
                    outcome = _publish(session, actor, event, catalogue)
            except CitygridError as error:
                # Its writes were rolled back with its savepoint; forget what it held.
                publishing.restore(mark)
                log.drop_after(log_mark)
                results.append(BatchItem(index, error.status_code, error.to_dict()))
                continue
            results.append(BatchItem(index, outcome.status_code, outcome.body, outcome.replayed))
    return results


def _publish_together(
    session: Session,
    actor: Actor,
    parsed: Sequence[LifeEventBase | CitygridError],
    valid: Sequence[LifeEventBase],
    catalogue: Catalogue,
) -> list[BatchItem] | None:
    """The batch's answers, published in one savepoint with its keys claimed in one
    statement; None, with nothing of it left, when an event was refused: the caller then
    publishes the events one savepoint each, so that the refused ones change nothing and the
    others apply (a savepoint per event costs more than the event's own writes; refusals are
    rare)."""
    if len(valid) < 2 or len(valid) < len(parsed):
        return None
    department = _publisher(actor)
    if any(
        (spec := catalogue.event_type(event.type)) is None  # type: ignore[attr-defined]
        or spec.owner != department
        for event in valid
    ):
        return None
    publishing = _publishing(session)
    log = publishing.log
    mark, log_mark = publishing.checkpoint(), log.mark()
    try:
        # The ORM writes of the whole batch are flushed together (one UPDATE executemany per
        # table and set of columns): every event whose applier reads only what ``prefetch``
        # read and the batch keeps current needs no flush before it; any other flushes what
        # came before, so that its queries see it.
        with session.begin_nested(), registry.deferred_flush(session):
            publishing.claim_keys(actor, department, valid)
            outcomes = []
            for event in valid:
                if not isinstance(event, _PREFETCHED_EVENTS):
                    session.flush()
                outcomes.append(_publish(session, actor, event, catalogue))
    except CitygridError:
        publishing.restore(mark)
        log.drop_after(log_mark)
        return None
    finally:
        publishing.claims = None
    return [
        BatchItem(index, outcome.status_code, outcome.body, outcome.replayed)
        for index, outcome in enumerate(outcomes)
    ]


def _key_reused() -> Conflict:
    return Conflict(
        _("source_event_id: already used for a different event"),
        details=[{"field": "source_event_id", "reason": _("already used for a different event")}],
    )


def _replay(
    session: Session, department: str, source_event_id: str, fingerprint: str
) -> PublishOutcome:
    first = repository.event_by_key(session, department=department, source_event_id=source_event_id)
    if first is None or first.response_body is None or first.response_status is None:
        # Another publish holds the key and has not finished: the caller may retry.
        raise Conflict(
            _("source_event_id: being published by another request"),
            details=[{"field": "source_event_id", "reason": _("being published")}],
        )
    if first.payload_hash != fingerprint:
        raise _key_reused()
    return PublishOutcome(first.response_status, dict(first.response_body), replayed=True)


def get_event_answer(session: Session, actor: Actor, *, event_id: int) -> dict[str, Any]:
    """The answer given to one of the caller's department's events; 404 for others'."""
    record = repository.get_event(session, event_id=event_id)
    if record is None or record.department != actor.department or record.response_body is None:
        raise NotFound(_("Not found."))
    return dict(record.response_body)


def event_delivery(session: Session, actor: Actor, *, event_id: int) -> dict[str, Any]:
    """Where the news of one of the caller's events is: its outbox entries, which consumers
    have applied them, and the tasks they created (ids and states only)."""
    answer = get_event_answer(session, actor, event_id=event_id)
    entries = repository.outbox_of_event(session, event_id=event_id)
    deliveries = repository.deliveries_of(session, entry_ids=[entry.id for entry in entries])
    consumers: dict[int, list[str]] = {}
    for entry_id, consumer in deliveries:
        consumers.setdefault(entry_id, []).append(consumer)
    return {
        **answer,
        "outbox": [
            {
                "entry_id": entry.id,
                "topic": entry.topic,
                "state": str(entry.state),
                "attempts": entry.attempts,
                "consumers": sorted(consumers.get(entry.id, [])),
            }
            for entry in entries
        ],
        "tasks": [
            {"id": task.id, "kind": task.kind, "assignee": task.assignee, "state": str(task.state)}
            for task in repository.tasks_of_event(session, event_id=event_id)
        ],
    }


# ============================================================================ datasets


# Positions in the registry's key rows (``registry.person_key_rows``).
_KEY_ID, _KEY_REF, _KEY_GRID, _KEY_STATUS = 1, 2, 3, 4
_DECEASED = LifeStatus.DECEASED.value


@dataclass
class _Accepted:
    """The rows of a batch that passed their checks, column by column (a bulk import hands
    thousands a batch; no object per row): each row's position in the batch, its fields
    (one list per field of the row shape) and its person's key row."""

    positions: list[int]
    columns: dict[str, list[Any]]
    keys: list[Sequence[Any]]

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def person_ids(self) -> list[int]:
        """The rows' person ids."""
        return list(map(itemgetter(_KEY_ID), self.keys))

    @property
    def grid_codes(self) -> list[str]:
        """The rows' persons' grid codes."""
        return list(map(itemgetter(_KEY_GRID), self.keys))

    @property
    def refs(self) -> list[str]:
        """The rows' persons' opaque references."""
        return list(map(itemgetter(_KEY_REF), self.keys))

    def pick(self, chosen: Sequence[int]) -> _Accepted:
        """Some of these rows (by their place in this set, in increasing order)."""
        if len(chosen) == len(self.positions):
            return self
        return self._take(chosen)

    def by_person(self) -> _Accepted:
        """These rows in person id order."""
        person_ids = self.person_ids
        return self._take(sorted(range(len(person_ids)), key=person_ids.__getitem__))

    def _take(self, chosen: Sequence[int]) -> _Accepted:
        return _Accepted(
            positions=[self.positions[at] for at in chosen],
            columns={name: [values[at] for at in chosen] for name, values in self.columns.items()},
            keys=[self.keys[at] for at in chosen],
        )


def _row_problems(index: int, exc: ValidationError) -> list[RowProblem]:
    return [
        RowProblem(index=index, field=detail["field"], reason=detail["reason"])
        for detail in validation_failed(exc).details
    ]


def _record_keys(
    dataset: str, columns: Mapping[str, list[Any]], person_ids: list[int]
) -> list[Any]:
    """Each row's record key: what a dataset holds one row of (a person; for tenancies a
    person, unit and start)."""
    if dataset == "tenancies":
        return list(zip(person_ids, columns["unit_id"], columns["since"], strict=True))
    return person_ids


@dataclass
class ParsedRows:
    """A batch of rows checked on their own, before any look-up in the database: the index
    in the batch of each valid row, the valid rows' fields column by column (one list per
    field of the row shape, in its order), and the problems of the others (``parse_rows``).
    The bulk import builds it in a reader process while the batch before is being written."""

    received: int
    indexes: list[int]
    columns: dict[str, list[Any]]
    problems: list[RowProblem]


def parse_rows(dataset: str, records: Sequence[Any]) -> ParsedRows:
    """Validate every row of a batch on its own against the dataset's row shape (no
    database): the valid rows and every rejected one."""
    shape = ROW_SHAPES[dataset_spec(dataset).slug]
    # The model's own validator (what ``model_validate`` calls), without its Python wrapper:
    # it runs for every row of a bulk import.
    validate = shape.__pydantic_validator__.validate_python
    problems: list[RowProblem] = []
    indexes: list[int] = []
    valid: list[Any] = []
    for index, raw in enumerate(records):
        if not isinstance(raw, dict):
            problems.append(RowProblem(index=index, field="record", reason=_("must be an object")))
            continue
        try:
            valid.append(validate(raw))
        except ValidationError as exc:
            problems.extend(_row_problems(index, exc))
            continue
        indexes.append(index)
    return ParsedRows(
        received=len(records),
        indexes=indexes,
        columns={name: list(map(attrgetter(name), valid)) for name in shape.model_fields},
        problems=problems,
    )


def _check_rows(
    session: Session, dataset: str, batch: ParsedRows
) -> tuple[_Accepted, list[RowProblem]]:
    """The database's checks of the parsed rows (the person, the unit, a deceased person, a
    record twice in the batch): the accepted rows and every rejected one."""
    problems = list(batch.problems)
    columns = batch.columns
    id_numbers = columns["id_number"]
    found = registry.person_key_rows(session, id_numbers=list(dict.fromkeys(id_numbers)))
    keys: list[Any] = list(map(found.get, id_numbers))
    tenancies = dataset == "tenancies"
    unit_grids: dict[int, str] = {}
    if tenancies:
        unit_ids = list(dict.fromkeys(columns["unit_id"]))
        unit_grids = registry.unit_grid_codes(session, unit_ids=unit_ids)
    # Column by column, as long as no row is refused (the usual batch): a person missing,
    # a unit missing, a deceased person, a record twice. Otherwise row by row.
    clean = (
        None not in keys
        and (not tenancies or unit_grids.keys() >= set(columns["unit_id"]))
        and (
            dataset not in _DEATH_BOUND
            or _DECEASED not in set(map(itemgetter(_KEY_STATUS), found.values()))
        )
    )
    if clean:
        record_keys = _record_keys(dataset, columns, list(map(itemgetter(_KEY_ID), keys)))
        clean = len(set(record_keys)) == len(record_keys)
    accepted = _Accepted(positions=batch.indexes, columns=columns, keys=keys)
    if not clean:
        accepted = accepted.pick(_row_by_row(dataset, batch, keys, unit_grids, problems))
    if dataset == "marital_statuses" and accepted:
        accepted = _newer_marriage_events(session, accepted, problems)
    problems.sort(key=lambda problem: problem.index)
    return accepted, problems


def _row_by_row(
    dataset: str,
    batch: ParsedRows,
    keys: list[Sequence[Any] | None],
    unit_grids: Mapping[int, str],
    problems: list[RowProblem],
) -> list[int]:
    """The checks of ``_check_rows`` one row at a time: the accepted rows (by their place
    among the parsed ones); the others' problems added to ``problems``."""
    columns = batch.columns
    tenancies = dataset == "tenancies"
    unit_ids = columns.get("unit_id")
    sinces = columns.get("since")
    statuses = columns.get("status")
    chosen: list[int] = []
    seen: set[Any] = set()
    for at, (index, key) in enumerate(zip(batch.indexes, keys, strict=True)):
        if key is None:
            reason = _("no person with this ID number is registered")
            problems.append(RowProblem(index=index, field="id_number", reason=reason))
            continue
        if tenancies and unit_ids is not None and unit_ids[at] not in unit_grids:
            reason = _("no such housing unit")
            problems.append(RowProblem(index=index, field="unit_id", reason=reason))
            continue
        if key[_KEY_STATUS] == _DECEASED and (
            found := _deceased_problem(dataset, statuses[at] if statuses is not None else None)
        ):
            problems.append(RowProblem(index=index, field=found[0], reason=found[1]))
            continue
        record_key: Any = key[_KEY_ID]
        if tenancies and unit_ids is not None and sinces is not None:
            record_key = (record_key, unit_ids[at], sinces[at])
        if record_key in seen:
            reason = _("the same record appears earlier in this batch")
            problems.append(RowProblem(index=index, field="id_number", reason=reason))
            continue
        seen.add(record_key)
        chosen.append(at)
    return chosen


#: A deceased person's records may be written only as no longer running: the datasets whose
#: rows then carry a status, and the one status they may not take.
_ENDED_BY_DEATH = {"subsistence_allowances", "pensions", "tenancies"}
#: The datasets whose rows a person's death may refuse (``_deceased_problem``).
_DEATH_BOUND = _ENDED_BY_DEATH | {"marital_statuses"}


def _deceased_problem(dataset: str, status: Any) -> tuple[str, str] | None:
    """Why a row (with this ``status``, if its dataset has one) cannot be written about a
    deceased person (field, reason), or None.

    Death is the newest fact of every aspect of a life (as for life events): an allowance,
    a pension or a tenancy cannot be active after it, and the marital status is no longer
    changed. A row recording the end of a benefit (suspended, stopped, ended) is accepted, as
    are the criminal record flags public security keeps."""
    if dataset in _ENDED_BY_DEATH and str(status) == "active":
        return "status", _("cannot be active: the person is deceased")
    if dataset == "marital_statuses":
        return "marital_status", _("cannot change: the person is deceased")
    return None


def _newer_marriage_events(
    session: Session, accepted: _Accepted, problems: list[RowProblem]
) -> _Accepted:
    """Keep the marital rows that newer facts do not supersede; list the others as rejected.

    A batch row is as old as its ``since`` (a day, China time; a row without one has no
    date). The persons' clock rows are locked, as a life event locks them, and a row older
    than the latest applied ``marriage_status_changed`` of its person (``marital`` clock) is
    rejected: a nightly dump made before a marriage was registered never undoes it."""
    person_ids = accepted.person_ids
    clocks = repository.lock_subjects(session, person_ids=person_ids)
    kept: list[int] = []
    sinces: list[date | None] = accepted.columns["since"]
    for at, (person_id, since) in enumerate(zip(person_ids, sinces, strict=True)):
        latest = clocks.get(person_id, {}).get(MARITAL_ASPECT)
        if latest is not None:
            latest_day = local_date(datetime.fromisoformat(latest))
            if since is None or since < latest_day:
                reason = _("older than a marital status change already on record (%(day)s)") % {
                    "day": latest_day.isoformat()
                }
                problems.append(
                    RowProblem(index=accepted.positions[at], field="since", reason=reason)
                )
                continue
        kept.append(at)
    return accepted.pick(kept)


def _advance_marital_clocks(session: Session, changed: _Accepted) -> None:
    """A written marital row with a date is the latest fact of its person's ``marital``
    aspect: a later-arriving event older than it is then superseded."""
    dated = [
        (person_id, since)
        for person_id, since in zip(changed.person_ids, changed.columns["since"], strict=True)
        if since is not None
    ]
    if not dated:
        return
    clocks = repository.lock_subjects(session, person_ids=[person_id for person_id, _ in dated])
    changes: dict[int, dict[str, str]] = {}
    for person_id, since in dated:
        moment = datetime.combine(since, time(), tzinfo=CHINA_STANDARD_TIME)
        current = clocks.get(person_id, {})
        latest = current.get(MARITAL_ASPECT)
        if latest is None or datetime.fromisoformat(latest) < moment:
            changes[person_id] = current | {MARITAL_ASPECT: moment.astimezone(UTC).isoformat()}
    repository.save_clocks_many(session, changes)


def _held_fields(dataset: str) -> tuple[str, ...]:
    """The fields of a dataset's row that are columns of its table (all but the ID number)."""
    return tuple(name for name in ROW_SHAPES[dataset].model_fields if name != "id_number")


def _upsert(
    session: Session, actor: Actor, dataset: str, accepted: _Accepted
) -> tuple[int, int, int, _Accepted]:
    """Insert new rows and update changed ones; (created, updated, unchanged, changed rows)."""
    model = repository.DATASET_MODELS[dataset]
    # In person id order: the inserts then extend the person_id indexes (and check the
    # foreign key) page after page instead of all over them, a tenth less of SQLite's time.
    accepted = accepted.by_person()
    person_ids = accepted.person_ids
    held = repository.held_values(session, model, person_ids=person_ids) if accepted else []
    fields = _held_fields(dataset)
    grid_codes = accepted.grid_codes
    updates: list[dict[str, Any]] = []
    unchanged = 0
    inserts = changed = accepted
    if held:
        # Rows held already: each row compared with its record's (only then: a batch of new
        # rows, the usual first import, goes straight to the insert).
        existing = {_existing_key(dataset, row): row for row in held}
        values = [accepted.columns[name] for name in fields]
        new: list[int] = []
        changed_at: list[int] = []
        for at, record_key in enumerate(_record_keys(dataset, accepted.columns, person_ids)):
            current = existing.get(record_key)
            if current is None:
                new.append(at)
                changed_at.append(at)
                continue
            differences = {
                name: value
                for name, column in zip(fields, values, strict=True)
                if (value := column[at]) != getattr(current, name)
            }
            if grid_codes[at] != current.grid_code:
                differences["grid_code"] = grid_codes[at]
            if not differences:
                unchanged += 1
                continue
            updates.append(differences | {"id": current.id, "changed_by": actor.name})
            changed_at.append(at)
        inserts = accepted.pick(new)
        changed = accepted.pick(changed_at)
    if inserts:
        # Column by column, straight from the reader's columns: thousands of rows a batch.
        columns: dict[str, list[Any]] = {name: inserts.columns[name] for name in fields}
        columns["grid_code"] = grid_codes if inserts is accepted else inserts.grid_codes
        columns["person_id"] = person_ids if inserts is accepted else inserts.person_ids
        repository.insert_held_columns(session, model, columns, shared={"changed_by": actor.name})
    repository.update_held(session, model, updates)
    if updates:
        repository.expire_loaded(session, model)  # ORM copies are stale after the Core writes
    return len(inserts), len(updates), unchanged, changed


def _existing_key(dataset: str, row: Any) -> Any:
    if dataset == "tenancies":
        return (row.person_id, row.unit_id, row.since)
    return row.person_id


def publish_records(
    session: Session,
    actor: Actor,
    *,
    dataset: str,
    data: RecordsPublish | Mapping[str, Any],
) -> PublishReport:
    """Upsert a batch of a dataset's records, each row checked on its own: with
    ``all_or_nothing`` any rejected row writes nothing (422 listing them all); with
    ``valid_rows`` the valid rows are written and the rejected ones listed."""
    spec = dataset_spec(dataset)
    request = parse(RecordsPublish, data)
    return publish_rows(
        session, actor, dataset=spec.slug, mode=request.mode, records=request.records
    )


def _owner_of(actor: Actor, spec: DatasetSpec) -> str:
    department = _publisher(actor)
    if department != spec.owner:
        raise Forbidden(_("Only the owning department may publish this dataset."))
    return department


def check_rows(
    session: Session, actor: Actor, *, dataset: str, records: Sequence[Any] | ParsedRows
) -> list[RowProblem]:
    """Check a batch as ``publish_rows`` would, writing nothing: every rejected row (the
    bulk import's first pass over a file in ``all_or_nothing`` mode)."""
    spec = dataset_spec(dataset)
    _owner_of(actor, spec)
    batch = records if isinstance(records, ParsedRows) else parse_rows(spec.slug, records)
    _accepted, problems = _check_rows(session, spec.slug, batch)
    return problems


def publish_rows(
    session: Session,
    actor: Actor,
    *,
    dataset: str,
    mode: PublishMode,
    records: Sequence[Any] | ParsedRows,
) -> PublishReport:
    """Upsert rows of a dataset the actor's department owns (403 otherwise), each row
    checked on its own, with the changed rows' outbox entries and the batch's publication
    record; shared by the API and the bulk import (which may hand rows it parsed already,
    ``parse_rows``). The caller bounds the batch size."""
    spec = dataset_spec(dataset)
    department = _owner_of(actor, spec)
    dataset = spec.slug
    batch = records if isinstance(records, ParsedRows) else parse_rows(dataset, records)
    received = batch.received
    accepted, problems = _check_rows(session, dataset, batch)
    if problems and mode is PublishMode.ALL_OR_NOTHING:
        raise ValidationFailed(
            _("%(rejected)d of %(received)d records were rejected; nothing was written.")
            % {
                "rejected": len({problem.index for problem in problems}),
                "received": received,
            },
            details=[problem.model_dump() for problem in problems],
        )
    created, updated, unchanged, changed = _upsert(session, actor, dataset, accepted)
    if dataset == "marital_statuses" and changed:
        _advance_marital_clocks(session, changed)
        registry.set_marital_statuses(
            session,
            actor,
            statuses=dict(
                zip(
                    changed.person_ids,
                    map(MaritalStatus, changed.columns["marital_status"]),
                    strict=True,
                )
            ),
        )
    outbox.enqueue_about_persons(
        session,
        topic=f"dataset.{dataset}",
        person_ids=changed.person_ids,
        grid_codes=changed.grid_codes,
        payloads=[{"dataset": dataset, "person_ref": ref} for ref in changed.refs],
    )
    rejected_rows = len({problem.index for problem in problems})
    repository.record_publication(
        session,
        {
            "dataset": dataset,
            "department": department,
            "publisher": actor.name,
            "mode": mode.value,
            "received": received,
            "created": created,
            "updated": updated,
            "rejected": rejected_rows,
        },
    )
    return PublishReport(
        dataset=dataset,
        mode=mode,
        received=received,
        created=created,
        updated=updated,
        unchanged=unchanged,
        rejected=problems,
    )


# ============================================================================ bulk imports


def _fresh_job_values(mode: PublishMode) -> dict[str, Any]:
    first = ImportPhase.VALIDATING if mode is PublishMode.ALL_OR_NOTHING else ImportPhase.APPLYING
    return {
        "mode": mode.value,
        "phase": first,
        "rows_done": 0,
        "line": 0,
        "byte_offset": 0,
        "report_bytes": 0,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "started_at": utcnow(),
        "checkpoint_at": utcnow(),
        "finished_at": None,
    }


def start_import(
    session: Session,
    actor: Actor,
    *,
    dataset: str,
    fingerprint: str,
    mode: PublishMode,
    file_name: str,
    file_size: int,
    restart: bool = False,
) -> tuple[ImportJob, str]:
    """The import job of a file into a dataset the actor's department owns (403 otherwise),
    and whether it is ``new``, ``resumed`` (killed before it finished: it continues from its
    checkpoint) or ``finished`` (imported before; ``restart`` imports it again). A file whose
    ``all_or_nothing`` import was rejected starts over (the data may have changed since)."""
    spec = dataset_spec(dataset)
    department = _owner_of(actor, spec)
    job = repository.import_job_of_file(session, dataset=spec.slug, fingerprint=fingerprint)
    if job is None:
        values = _fresh_job_values(mode) | {
            "dataset": spec.slug,
            "fingerprint": fingerprint,
            "department": department,
            "publisher": actor.name,
            "file_name": file_name[-255:],
            "file_size": file_size,
        }
        return repository.insert_import_job(session, values), "new"
    if restart or job.phase is ImportPhase.REJECTED:
        values = _fresh_job_values(mode) | {"department": department, "publisher": actor.name}
        repository.save_import_job(session, job_id=job.id, values=values)
        session.refresh(job)
        return job, "new"
    if job.phase is ImportPhase.DONE:
        return job, "finished"
    if job.mode != mode.value:
        raise Conflict(
            _(
                "mode: this file's import was started in %(mode)s mode; continue it in that mode, "
                "or start it over with --restart"
            )
            % {"mode": job.mode},
            details=[{"field": "mode", "reason": _("differs from the interrupted import")}],
        )
    return job, "resumed"


def import_job(session: Session, *, job_id: int) -> ImportJob:
    """An import job by id (NotFound if none)."""
    job = repository.get_import_job(session, job_id=job_id)
    if job is None:
        raise NotFound(_("No such import."))
    return job


def claim_import_step(session: Session, *, job_id: int, rows_done: int, phase: ImportPhase) -> None:
    """Take the job for the next batch, first thing in the batch's transaction; Conflict when
    another process has moved the same import on (two runs of one file at once)."""
    if not repository.claim_import_step(
        session, job_id=job_id, rows_done=rows_done, phase=phase.value
    ):
        raise Conflict(_("Another process is importing the same file; this one stops."))


def checkpoint_import(session: Session, *, job_id: int, values: Mapping[str, Any]) -> None:
    """Write the job's resume point and counters (in the transaction of the batch)."""
    repository.save_import_job(session, job_id=job_id, values=dict(values))


# ============================================================================ reading


ACTION_READ_DATASET = "read_dataset"


@dataclass(frozen=True)
class DatasetRecords:
    """A person's records of a dataset as the caller may see them."""

    dataset: str
    purpose: str
    subject: str
    records: list[dict[str, Any]]
    masked: tuple[str, ...]
    audit_entry_id: int


def _refusal(
    error: CitygridError,
    actor: Actor,
    *,
    purpose: str | None,
    reason: str,
    dataset: str,
    subjects: Sequence[str] = (),
    fields: Sequence[str] = (),
) -> CitygridError:
    """Attach the denied access-log entry to a refusal, as the access gateway does."""
    error.denial = audit.record_for(  # type: ignore[attr-defined]
        actor,
        action=ACTION_READ_DATASET,
        outcome=audit.DENIED,
        purpose=purpose,
        subjects=tuple(subjects),
        fields=tuple(fields),
        request_id=actor.request_id,
        client_address=actor.client_address,
        detail={
            "policy_version": gateway.default_policy().version,
            "reason": reason,
            "dataset": dataset,
        },
    )
    return error


def read_records(
    session: Session,
    actor: Actor,
    *,
    dataset: str,
    purpose: str | None,
    person_ref: str | None = None,
    id_number: str | None = None,
) -> DatasetRecords:
    """A person's records of a dataset, by the access gateway's rules: a purpose the caller's
    grant lists (400/403), the dataset's field classes visible to the caller (403 when all
    are hidden: the department is not granted the dataset), the person inside the caller's
    scope (404 otherwise, like no person at all; the rows are filtered by scope in SQL),
    consent where the purpose needs it (403), every field shown clear or masked as the policy
    says, and the access-log entry appended in the caller's transaction. A refusal carries
    its denied entry (``gateway.denial_of``)."""
    spec = dataset_spec(dataset)
    policy = gateway.default_policy()
    view = gateway.view_for(actor, purpose=purpose, action=ACTION_READ_DATASET)
    code = view.purpose.code
    # The gateway's view says which fields show and how (the webhooks' rows use the same).
    shown = [field for field in spec.fields if field.mask_as in view.by_field]
    if not shown:
        raise _refusal(
            gateway.AccessForbidden(
                _("Your department is not granted the dataset %(dataset)s.") % {"dataset": dataset},
                code="dataset_not_granted",
                details={"dataset": dataset},
            ),
            actor,
            purpose=code,
            reason="dataset_not_granted",
            dataset=dataset,
            fields=spec.field_classes,
        )
    if (person_ref is None) == (id_number is None):
        raise ValidationFailed.one("person", _("name the person by reference or ID number"))
    key: tuple[int, str, str] | None = None  # id, ref, grid code
    if id_number is not None:
        found = registry.person_keys(session, id_numbers=[id_number.strip().upper()])
        person = next(iter(found.values()), None)
        key = None if person is None else (person.id, person.ref, person.grid_code)
    elif person_ref is not None:
        try:
            row = registry.person_by_ref(session, ref=person_ref)
        except NotFound:
            row = None
        key = None if row is None else (row.id, row.ref, row.grid_code)
    scopes = tuple(prefix for prefix in actor.scopes if prefix.isascii() and prefix.isdigit())
    if key is None or not any(key[2].startswith(prefix) for prefix in scopes):
        raise _refusal(
            gateway.AccessNotFound(_("No such person.")),
            actor,
            purpose=code,
            reason="not_found" if key is None else "out_of_scope",
            dataset=dataset,
            subjects=() if key is None else (key[1],),
        )
    person_id, ref, _grid = key
    classes = tuple(dict.fromkeys(field.field_class for field in shown))
    if view.needs_consent:
        covered = consent_store.consented_classes(
            session,
            person_ids=[person_id],
            requester_department=consent_store.requester_of(actor),
            purpose=code,
            on=local_today(),
        ).get(person_id, frozenset())
        missing = [name for name in classes if name not in covered]
        if missing:
            raise _refusal(
                gateway.AccessForbidden(
                    _("No active consent of this person for %(purpose)s covers: %(classes)s.")
                    % {"purpose": code, "classes": ", ".join(missing)},
                    code="consent_required",
                    details={"person": ref, "purpose": code, "field_classes": missing},
                ),
                actor,
                purpose=code,
                reason="consent_required",
                dataset=dataset,
                subjects=(ref,),
                fields=missing,
            )
    model = repository.DATASET_MODELS[dataset]
    rows = repository.held_rows_in_scope(session, model, person_id=person_id, scopes=scopes)
    fields = sources.dataset_records(dataset).fields
    records = [
        gateway.show_record(view, fields, {name: getattr(held, name) for name, _f in fields})
        for held in rows
    ]
    masked = tuple(
        field.name for field in shown if view.by_field[field.mask_as].level is Level.MASKED
    )
    entry_id = audit.append(
        session,
        audit.record_for(
            actor,
            action=ACTION_READ_DATASET,
            outcome=audit.ALLOWED,
            purpose=code,
            subjects=(ref,),
            fields=classes if records else (),
            request_id=actor.request_id,
            client_address=actor.client_address,
            detail={
                "policy_version": policy.version,
                "dataset": dataset,
                "records": len(records),
            },
        ),
    )
    return DatasetRecords(dataset, code, ref, records, masked, entry_id)


# ============================================================================ tasks


def task_read(task: Task) -> TaskRead:
    """A task as the API shows it."""
    return TaskRead(
        id=task.id,
        assignee_kind=str(task.assignee_kind),
        assignee=task.assignee,
        grid_code=task.grid_code,
        kind=task.kind,
        subject=task.subject_ref,
        due_at=task.due_at,
        state=str(task.state),
        created_by_event_id=task.created_by_event_id,
        created_at=task.created_at,
    )


def department_tasks(
    session: Session, actor: Actor, *, state: TaskState | None = TaskState.OPEN
) -> list[TaskRead]:
    """The tasks of the caller's department (open ones by default), the most urgent first."""
    department = _publisher(actor)
    tasks = repository.tasks_for(
        session, assignee_kind=AssigneeKind.DEPARTMENT, assignees=[department], state=state
    )
    return [task_read(task) for task in tasks]


def tasks_about(session: Session, *, person_id: int) -> list[Task]:
    """The tasks about a person (for other services and tests)."""
    return repository.tasks_of_person(session, person_id=person_id)


# ============================================================================ held data, internal


def allowance_of(session: Session, *, person_id: int) -> AllowanceRecord | None:
    """The allowance civil affairs holds for a person (for in-process callers: the demo's
    story; people read it through ``read_records``)."""
    return repository.allowance_of(session, person_id=person_id)


def allowance_recipients(
    session: Session, *, grid_code: str, status: AllowanceStatus = AllowanceStatus.ACTIVE
) -> list[int]:
    """The ids of the persons of a grid whose allowance has this status, lowest first."""
    return repository.allowance_person_ids(session, grid_code=grid_code, status=status)


def active_tenancies(session: Session, *, person_id: int) -> list[TenancyRecord]:
    """A person's active tenancies (for in-process callers such as the demo's feeds)."""
    return repository.active_tenancies(session, person_id=person_id)


def count_events(session: Session, *, source_prefix: str) -> int:
    """How many events were published with a source id starting with a prefix (any
    department; the demo's feeds number theirs)."""
    return repository.count_events_with_prefix(session, prefix=source_prefix)
