"""Tables of the data exchange: member departments, the datasets they hold in citygrid, the
life events they publish, the transactional outbox and its deliveries, and the tasks the
reactions create.

Every row that points at a person carries ``grid_code`` (the person's grid when it was last
written), so a territorial scope is an indexed range scan, as everywhere in citygrid.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from citygrid.kit.models import Base, BigId, TimestampMixin, str_enum, utcnow
from citygrid.registry.models import MaritalStatus


class AllowanceStatus(enum.StrEnum):
    """State of a subsistence allowance (低保)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"  # paused pending review (e.g. the recipient was reported dead)
    STOPPED = "stopped"


class PensionStatus(enum.StrEnum):
    """State of a pension."""

    ACTIVE = "active"
    STOPPED = "stopped"


class TenancyStatus(enum.StrEnum):
    """State of a registered tenancy."""

    ACTIVE = "active"
    ENDED = "ended"


class OutboxState(enum.StrEnum):
    """Where an outbox entry is in its delivery."""

    PENDING = "pending"  # waiting (``available_at`` says from when)
    CLAIMED = "claimed"  # a worker holds it until ``claimed_until``
    DELIVERED = "delivered"  # every consumer has applied it
    DEAD = "dead"  # gave up after too many failed attempts; needs an operator


class AssigneeKind(enum.StrEnum):
    """Who a task is for: a department, or the grid worker(s) of a grid."""

    DEPARTMENT = "department"
    GRID = "grid"


class TaskState(enum.StrEnum):
    """Whether a task is still to be done."""

    OPEN = "open"
    DONE = "done"


class Member(TimestampMixin, Base):
    """A department that takes part in the exchange (publishes, is told, subscribes)."""

    __tablename__ = "exchange_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str] = mapped_column(String(200), default="")


class _HeldRecord(TimestampMixin):
    """Columns every department-held record has: the person it is about, the person's grid
    (the scope key), and who last changed it."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    # The API client (or reaction) that last wrote the row; never personal data.
    changed_by: Mapped[str] = mapped_column(String(100))


class AllowanceRecord(_HeldRecord, Base):
    """A subsistence allowance as civil affairs published it (one per person)."""

    __tablename__ = "exchange_allowances"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_not_negative"),)

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), unique=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    status: Mapped[AllowanceStatus] = mapped_column(str_enum(AllowanceStatus))
    since: Mapped[date] = mapped_column(Date)


class PensionRecord(_HeldRecord, Base):
    """A pension as social security published it (one per person)."""

    __tablename__ = "exchange_pensions"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_not_negative"),)

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), unique=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    status: Mapped[PensionStatus] = mapped_column(str_enum(PensionStatus))
    since: Mapped[date] = mapped_column(Date)


class MaritalRecord(_HeldRecord, Base):
    """A marital status as family planning published it (one per person); mirrored into
    ``persons.marital_status`` through the registry service."""

    __tablename__ = "exchange_marital_statuses"

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), unique=True)
    marital_status: Mapped[MaritalStatus] = mapped_column(str_enum(MaritalStatus))
    since: Mapped[date | None] = mapped_column(Date)


class TenancyRecord(_HeldRecord, Base):
    """A tenancy as the rental housing office registered it: a person in a housing unit."""

    __tablename__ = "exchange_tenancies"
    __table_args__ = (
        UniqueConstraint("person_id", "unit_id", "since", name="uq_exchange_tenancies_key"),
        CheckConstraint("until IS NULL OR until >= since", name="period_order"),
        CheckConstraint("status <> 'ended' OR until IS NOT NULL", name="ended_has_until"),
    )

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("housing_units.id"), index=True)
    since: Mapped[date] = mapped_column(Date)
    until: Mapped[date | None] = mapped_column(Date)
    status: Mapped[TenancyStatus] = mapped_column(str_enum(TenancyStatus))


class CriminalRecordFlag(_HeldRecord, Base):
    """Whether public security holds a criminal record on a person (confidential)."""

    __tablename__ = "exchange_criminal_records"

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), unique=True)
    criminal_record: Mapped[bool] = mapped_column(Boolean)
    since: Mapped[date | None] = mapped_column(Date)


class Publication(Base):
    """One batch of dataset records a department published: what the scoreboard counts."""

    __tablename__ = "exchange_publications"
    __table_args__ = (Index("ix_exchange_publications_dataset_at", "dataset", "published_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(40))
    department: Mapped[str] = mapped_column(String(40), index=True)
    publisher: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(16))
    received: Mapped[int] = mapped_column(Integer)
    created: Mapped[int] = mapped_column(Integer)
    updated: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LifeEventRecord(Base):
    """A life event as received: its idempotency key, whether it was applied and why not,
    and the answer given, so that the same publish twice gets the same answer."""

    __tablename__ = "exchange_events"
    __table_args__ = (
        UniqueConstraint("department", "source_event_id", name="uq_exchange_events_source"),
        Index("ix_exchange_events_person_occurred", "person_id", "occurred_at"),
        Index("ix_exchange_events_department_received", "department", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    department: Mapped[str] = mapped_column(String(40))
    publisher: Mapped[str] = mapped_column(String(100))
    source_event_id: Mapped[str] = mapped_column(String(100))
    # SHA-256 of the canonical event: the same key with other content is refused.
    payload_hash: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    grid_code: Mapped[str | None] = mapped_column(String(15), index=True)
    applied: Mapped[bool | None] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(40))
    # The event's own fields without identifying ones (no ID numbers, no names).
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class SubjectClock(Base):
    """Per person, the ``occurred_at`` of the latest applied event of each aspect
    (``residence``, ``marital``, ``tenancy:<unit id>``). Also the row every publish about the
    person locks, so that events about one person are decided one at a time."""

    __tablename__ = "exchange_subject_clocks"

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True)
    clocks: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class OutboxEntry(Base):
    """A change others must hear of, written in the transaction of the change."""

    __tablename__ = "outbox"
    __table_args__ = (
        # Small partial indexes: delivered entries (the vast majority) are not in them.
        Index(
            "ix_outbox_undelivered",
            "id",
            postgresql_where=text("state IN ('pending', 'claimed')"),
            sqlite_where=text("state IN ('pending', 'claimed')"),
        ),
        Index(
            "ix_outbox_subject_undelivered",
            "subject_person_id",
            "id",
            postgresql_where=text("state IN ('pending', 'claimed')"),
            sqlite_where=text("state IN ('pending', 'claimed')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic: Mapped[str] = mapped_column(String(60))
    subject_person_id: Mapped[int | None] = mapped_column(Integer)
    subject_grid_code: Mapped[str | None] = mapped_column(String(15))
    # Ids and facts only: consumers re-read personal data through the services.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    available_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[OutboxState] = mapped_column(str_enum(OutboxState), default=OutboxState.PENDING)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class OutboxDelivery(Base):
    """One consumer applied one entry. Written in the transaction of the consumer's effect,
    so that an entry delivered twice is applied once."""

    __tablename__ = "outbox_deliveries"
    __table_args__ = (
        UniqueConstraint("entry_id", "consumer", name="uq_outbox_deliveries_entry_consumer"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"))
    consumer: Mapped[str] = mapped_column(String(60))
    worker: Mapped[str] = mapped_column(String(100))
    delivered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Task(Base):
    """Something a department or a grid worker must do, created by a reaction."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint(
            "created_by_event_id", "kind", "assignee", name="uq_tasks_event_kind_assignee"
        ),
        Index("ix_tasks_assignee_state", "assignee_kind", "assignee", "state"),
        Index("ix_tasks_grid_code_state", "grid_code", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignee_kind: Mapped[AssigneeKind] = mapped_column(str_enum(AssigneeKind))
    # A department slug, or a 15-digit grid code.
    assignee: Mapped[str] = mapped_column(String(40))
    # The subject's grid: the scope key of the task.
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    subject_person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)
    # The subject's opaque reference, so that a task list needs no join to persons.
    subject_ref: Mapped[str | None] = mapped_column(String(24))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[TaskState] = mapped_column(str_enum(TaskState), default=TaskState.OPEN)
    created_by_event_id: Mapped[int | None] = mapped_column(ForeignKey("exchange_events.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The account or client that marked it done (a name, never personal data).
    done_by: Mapped[str | None] = mapped_column(String(100))


class ImportPhase(enum.StrEnum):
    """Where a bulk import of a file is."""

    VALIDATING = "validating"  # all_or_nothing: checking every row, writing nothing
    APPLYING = "applying"  # writing batches, each committed with its checkpoint
    DONE = "done"  # every row applied (or reported rejected, in valid_rows mode)
    REJECTED = "rejected"  # all_or_nothing found rejected rows: nothing was written


class ImportJob(Base):
    """A bulk import of one file into a dataset, and its checkpoint: the resume point is
    updated in the transaction of each batch it covers, so an import killed at any moment
    and run again applies every row exactly once."""

    __tablename__ = "exchange_import_jobs"
    __table_args__ = (
        UniqueConstraint("dataset", "fingerprint", name="uq_exchange_import_jobs_file"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(40))
    # SHA-256 over the file's size and samples of its content (see exchange/importing.py).
    fingerprint: Mapped[str] = mapped_column(String(64))
    department: Mapped[str] = mapped_column(String(40), index=True)
    publisher: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(255))
    file_size: Mapped[int] = mapped_column(BigId)
    phase: Mapped[ImportPhase] = mapped_column(str_enum(ImportPhase))
    # The resume point: data rows consumed, the file line after them, the byte offset after
    # them (CSV; 0 for XLSX), and the error report's length at that point.
    rows_done: Mapped[int] = mapped_column(BigId, default=0)
    line: Mapped[int] = mapped_column(BigId, default=0)
    byte_offset: Mapped[int] = mapped_column(BigId, default=0)
    report_bytes: Mapped[int] = mapped_column(BigId, default=0)
    created: Mapped[int] = mapped_column(BigId, default=0)
    updated: Mapped[int] = mapped_column(BigId, default=0)
    unchanged: Mapped[int] = mapped_column(BigId, default=0)
    rejected: Mapped[int] = mapped_column(BigId, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    checkpoint_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
