"""Tables of incident cases: the case, its transitions, photos and "me too"s, the per-district
department overrides of the catalogue, and the case event log read by the live feed.

Every row that belongs to a case carries the case's ``grid_code``, so a territorial scope is
an indexed range scan on that column (DESIGN invariant 1).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from citygrid.kit.models import Base, BigId, str_enum, utcnow


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    SQLite keeps no offset and hands back naive values; comparing them with aware ones
    raises. Values are stored as UTC and always read back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store as UTC (a naive value is taken to be UTC already)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read back aware, in UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Timestamps:
    """created_at / updated_at, aware on every database (the kit's mixin reads back naive
    values from SQLite, which the API would show without an offset)."""

    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), server_default=func.current_timestamp(), default=utcnow
    )
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), server_default=func.current_timestamp(), default=utcnow, onupdate=utcnow
    )


def named_enum(cls: type[enum.Enum], name: str, length: int = 16) -> Enum:
    """Like ``str_enum`` but with the CHECK constraint's name given: two columns of one
    enum in one table need two names."""
    return Enum(
        cls,
        native_enum=False,
        create_constraint=True,
        length=length,
        name=name,
        values_callable=lambda members: [member.value for member in members],
    )


class CaseKind(enum.StrEnum):
    """Components (部件) are things that break; events (事件) are things that happen."""

    COMPONENT = "component"
    EVENT = "event"


class Priority(enum.StrEnum):
    """The task level chosen at intake; with the category it gives the deadline."""

    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"


class CaseState(enum.StrEnum):
    """Where a case stands in the loop (see ``citygrid.cases.service.TRANSITIONS``)."""

    REPORTED = "reported"
    REGISTERED = "registered"
    REJECTED = "rejected"
    DISPATCHED = "dispatched"
    HANDLING = "handling"
    HANDLED = "handled"
    CLOSED = "closed"
    EVALUATED = "evaluated"


#: States in which a case is still being worked on ("open").
OPEN_STATES = (
    CaseState.REPORTED,
    CaseState.REGISTERED,
    CaseState.DISPATCHED,
    CaseState.HANDLING,
    CaseState.HANDLED,
)

#: States in which the department's deadline runs.
DEADLINE_STATES = (CaseState.DISPATCHED, CaseState.HANDLING)


class Action(enum.StrEnum):
    """What an actor does to a case; each is a row of the transition table."""

    REPORT = "report"
    REGISTER = "register"
    REJECT = "reject"
    DISPATCH = "dispatch"
    RETURN = "return"
    ACCEPT = "accept"
    FEEDBACK = "feedback"
    VERIFY = "verify"
    EVALUATE = "evaluate"
    ESCALATE = "escalate"


class CaseSource(enum.StrEnum):
    """Where the report came from."""

    GRID_WORKER = "grid_worker"
    HOTLINE = "hotline"
    CITIZEN = "citizen"
    OPEN311 = "open311"


class PhotoStage(enum.StrEnum):
    """When a photo was taken: with the report, with the department's feedback, or with the
    grid worker's verification on site."""

    REPORTED = "reported"
    FEEDBACK = "feedback"
    VERIFICATION = "verification"


class Case(Timestamps, Base):
    """An incident case: one problem in one place, from report to evaluation."""

    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint(
            "reporter_name", "idempotency_key", name="uq_cases_reporter_idempotency_key"
        ),
        CheckConstraint("rework_count >= 0", name="rework_count_positive"),
        CheckConstraint("me_too_count >= 0", name="me_too_count_positive"),
        CheckConstraint("satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name="score"),
        # Scope filter (+ state), and the department's inbox.
        Index("ix_cases_grid_code_state", "grid_code", "state"),
        Index("ix_cases_department_state", "department", "state"),
        # Overdue sweep: open states with a deadline, earliest first.
        Index("ix_cases_state_deadline_at", "state", "deadline_at"),
        # Duplicate suggestions: same category, reported within a window.
        Index("ix_cases_category_reported_at", "category", "reported_at"),
        # Open311's request list: a window of report times, newest first.
        Index("ix_cases_reported_at", "reported_at"),
        # The evaluation: every column it reads, so a territory's cases are one index range
        # scan with no table lookups (see citygrid.cases.evaluation_repository).
        Index(
            "ix_cases_evaluation",
            "grid_code",
            "reported_at",
            "department",
            "state",
            "rework_count",
            "handling_hours",
            "closed_on_time",
            "deadline_at",
            "duplicate_of",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Opaque identifier for URLs and Open311's service_request_id; never the row id.
    ref: Mapped[str] = mapped_column(String(24), unique=True)
    category: Mapped[str] = mapped_column(String(5))
    kind: Mapped[CaseKind] = mapped_column(str_enum(CaseKind, 16))
    priority: Mapped[Priority] = mapped_column(str_enum(Priority, 16))
    state: Mapped[CaseState] = mapped_column(str_enum(CaseState, 16))
    description: Mapped[str] = mapped_column(Text)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    grid_code: Mapped[str] = mapped_column(String(15), ForeignKey("territorial_units.code"))
    community_code: Mapped[str] = mapped_column(String(12))
    street_code: Mapped[str] = mapped_column(String(9))
    district_code: Mapped[str] = mapped_column(String(6))
    address: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[CaseSource] = mapped_column(str_enum(CaseSource, 16))
    # Account username or API client id of whoever filed it (for anonymous citizens a
    # per-submission token): the key of idempotency and of "me too".
    reporter_name: Mapped[str] = mapped_column(String(64))
    # Personal data of a resident who called or wrote in: read only through the gateway.
    reporter_contact_name: Mapped[str | None] = mapped_column(String(50))
    reporter_contact_phone: Mapped[str | None] = mapped_column(String(20))
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    # The routed department (category, overridden per district) until dispatch, then the
    # department the case was dispatched to.
    department: Mapped[str] = mapped_column(String(40))
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    registered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    deadline_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    handled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    evaluated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    me_too_count: Mapped[int] = mapped_column(Integer, default=0)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    # Working hours from the (last) dispatch to the (last) feedback, set by the service at
    # feedback: the evaluation averages it in SQL without a calendar.
    handling_hours: Mapped[float | None] = mapped_column(Float)
    # Whether the verification that closed the case came by the deadline (set at closure).
    closed_on_time: Mapped[bool | None] = mapped_column(Boolean)


class CaseTransition(Base):
    """One step of a case's history: who did what, from which state to which, and why."""

    __tablename__ = "case_transitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    action: Mapped[Action] = mapped_column(str_enum(Action, 16))
    from_state: Mapped[CaseState | None] = mapped_column(named_enum(CaseState, "from_state"))
    to_state: Mapped[CaseState] = mapped_column(named_enum(CaseState, "to_state"))
    actor_name: Mapped[str] = mapped_column(String(64))
    actor_role: Mapped[str] = mapped_column(String(32))
    actor_department: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
    # Action-specific facts: department, result, score, reason, duplicate_of, deadline_at.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CasePhoto(Base):
    """A photo of a case as stored (metadata stripped); the file lives under the media
    directory by its content hash, so one file may serve several rows (the same picture sent
    twice), and its thumbnail next to it (see ``citygrid.cases.photos``)."""

    __tablename__ = "case_photos"
    __table_args__ = (
        CheckConstraint("size_bytes > 0", name="size_positive"),
        Index("ix_case_photos_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    stage: Mapped[PhotoStage] = mapped_column(str_enum(PhotoStage, 16))
    # Relative to the media directory: "ab/cd/<sha256>.<ext>", never a name the user gave.
    storage_path: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(40))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    # Where the camera said it was (read from EXIF before stripping it).
    taken_lon: Mapped[float | None] = mapped_column(Float)
    taken_lat: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CaseMeToo(Base):
    """Someone else saw the same problem: counted once per reporter."""

    __tablename__ = "case_me_toos"
    __table_args__ = (
        UniqueConstraint("case_id", "reporter_name", name="uq_case_me_toos_case_reporter"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    reporter_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


#: Override fields of a minor class besides its territory: each None keeps the catalogue's.
OVERRIDE_FIELDS = (
    "department",
    "deadline_urgent",
    "deadline_high",
    "deadline_normal",
    "register_zh",
    "register_en",
    "close_zh",
    "close_en",
)


class CategoryOverride(Timestamps, Base):
    """An administrator's change to a minor class of the catalogue, for the whole city
    (``district_code`` is the city's code) or for one district: its responsible department,
    its deadlines per priority ("4h" / "2d") and its criteria. A None field keeps the value
    from the city's override, else from ``catalogue.toml``."""

    __tablename__ = "category_overrides"
    __table_args__ = (
        UniqueConstraint(
            "district_code", "category", name="uq_category_overrides_district_category"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A district's code, or the city's code for a city-wide override.
    district_code: Mapped[str] = mapped_column(String(6))
    category: Mapped[str] = mapped_column(String(5))
    department: Mapped[str | None] = mapped_column(String(40))
    deadline_urgent: Mapped[str | None] = mapped_column(String(8))
    deadline_high: Mapped[str | None] = mapped_column(String(8))
    deadline_normal: Mapped[str | None] = mapped_column(String(8))
    register_zh: Mapped[str | None] = mapped_column(Text)
    register_en: Mapped[str | None] = mapped_column(Text)
    close_zh: Mapped[str | None] = mapped_column(Text)
    close_en: Mapped[str | None] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(64))


class CategoryOverrideChange(Base):
    """The history of the overrides: each set or removal with who and when, and the values
    the override had afterwards (all None for a removal). Only appended."""

    __tablename__ = "category_override_changes"
    __table_args__ = (Index("ix_category_override_changes_category_id", "category", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    district_code: Mapped[str] = mapped_column(String(6))
    category: Mapped[str] = mapped_column(String(5))
    change: Mapped[str] = mapped_column(String(8))  # "set" / "remove"
    department: Mapped[str | None] = mapped_column(String(40))
    deadline_urgent: Mapped[str | None] = mapped_column(String(8))
    deadline_high: Mapped[str | None] = mapped_column(String(8))
    deadline_normal: Mapped[str | None] = mapped_column(String(8))
    register_zh: Mapped[str | None] = mapped_column(Text)
    register_en: Mapped[str | None] = mapped_column(Text)
    close_zh: Mapped[str | None] = mapped_column(Text)
    close_en: Mapped[str | None] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CaseEventRecord(Base):
    """The case event log, written in the transaction of the change it reports.

    The live feed reads it with a cursor on ``id`` (and on PostgreSQL wakes up on NOTIFY);
    ``payload`` holds the typed event (``CaseCreated`` / ``CaseChanged``) as JSON.
    """

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
