"""Every query of the exchange. Nothing else in the exchange builds a SELECT.

Hot paths (the event log, the outbox, batch upserts) use SQLAlchemy Core; rows the reactions
change one at a time are ORM objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from operator import itemgetter
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import (
    JSON,
    BindParameter,
    ColumnElement,
    Date,
    Integer,
    Table,
    and_,
    bindparam,
    column,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from citygrid.exchange.models import (
    AllowanceRecord,
    AllowanceStatus,
    AssigneeKind,
    CriminalRecordFlag,
    ImportJob,
    LifeEventRecord,
    MaritalRecord,
    Member,
    OutboxDelivery,
    OutboxEntry,
    OutboxState,
    PensionRecord,
    PensionStatus,
    Publication,
    SubjectClock,
    Task,
    TaskState,
    TenancyRecord,
    TenancyStatus,
)
from citygrid.kit.models import Base
from citygrid.kit.queue import Window, claim_batch, next_window
from citygrid.registry.repository import scope_condition, unit_grid_code_column

# Rows per IN list: far below every backend's limit on bound parameters.
_IN_CHUNK = 1000
# The members of a JSON array of integers passed as the parameter ``json_ids`` (SQLite).
_JSON_IDS = text("SELECT value FROM json_each(:json_ids)").columns(column("value", Integer))

HeldT = TypeVar("HeldT", bound=Base)

#: The table holding each dataset.
DATASET_MODELS: dict[str, type[Base]] = {
    "subsistence_allowances": AllowanceRecord,
    "pensions": PensionRecord,
    "marital_statuses": MaritalRecord,
    "tenancies": TenancyRecord,
    "criminal_records": CriminalRecordFlag,
}


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


# ----------------------------------------------------------------------------- members


def list_members(session: Session) -> list[Member]:
    """Every member department, by slug."""
    return list(session.scalars(select(Member).order_by(Member.slug)))


def member_by_slug(session: Session, *, slug: str) -> Member | None:
    """The member with this slug, if any."""
    return session.scalars(select(Member).where(Member.slug == slug)).first()


def add_member(session: Session, values: dict[str, Any]) -> Member:
    """Insert a member."""
    member = Member(**values)
    session.add(member)
    session.flush()
    return member


# ----------------------------------------------------------------------------- events


def _on_dialect(session: Session) -> Any:
    """The ``insert`` of the session's backend (both have ON CONFLICT)."""
    return postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert


# Statements of the publish path, built once per backend: building a statement costs more
# than running it on SQLite.
_STATEMENTS: dict[tuple[str, str], Any] = {}


def _statement(session: Session, name: str, build: Any) -> Any:
    key = (name, _dialect(session))
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = _STATEMENTS[key] = build(_on_dialect(session))
    return statement


def _build_claim(dialect_insert: Any) -> Any:
    table = _table(LifeEventRecord)
    return (
        dialect_insert(table)
        .on_conflict_do_nothing(index_elements=["department", "source_event_id"])
        .returning(table.c.id)
    )


def claim_event_key(session: Session, values: dict[str, Any]) -> int | None:
    """Insert the event row unless its (department, source_event_id) exists; its id, or None
    when another publish holds the key (on PostgreSQL this waits for that one to finish)."""
    statement = _statement(session, "claim_event_key", _build_claim)
    result: int | None = session.execute(statement, values).scalar_one_or_none()
    return result


def _build_claim_many(dialect_insert: Any) -> Any:
    table = _table(LifeEventRecord)
    return (
        dialect_insert(table)
        .on_conflict_do_nothing(index_elements=["department", "source_event_id"])
        .returning(table.c.source_event_id, table.c.id)
    )


def claim_event_keys(session: Session, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """``claim_event_key`` for many events of one department, one statement: ``{source
    event id: event id}`` of the keys claimed (a key held before is absent). The rows are
    inserted in key order, so that two batches sharing keys on PostgreSQL wait for each
    other in one direction only."""
    if not rows:
        return {}
    statement = _statement(session, "claim_event_keys", _build_claim_many)
    ordered = sorted(rows, key=lambda row: row["source_event_id"])
    return {key: event_id for key, event_id in session.execute(statement, ordered)}


def event_by_key(
    session: Session, *, department: str, source_event_id: str
) -> LifeEventRecord | None:
    """The event a department published under this key, if any."""
    statement = select(LifeEventRecord).where(
        LifeEventRecord.department == department,
        LifeEventRecord.source_event_id == source_event_id,
    )
    return session.scalars(statement).first()


def get_event(session: Session, *, event_id: int) -> LifeEventRecord | None:
    """An event by id, if any."""
    return session.get(LifeEventRecord, event_id)


_EVENTS = _table(LifeEventRecord)
_FINISH_EVENT = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("event_id"))
    .values(
        {
            name: bindparam(name)
            for name in (
                "person_id",
                "grid_code",
                "applied",
                "reason",
                "facts",
                "response_status",
                "response_body",
            )
        }
    )
)


def finish_events(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Write the outcomes of events into their rows (one executemany; each row as
    ``finish_event``'s values with ``event_id``)."""
    if rows:
        session.execute(_FINISH_EVENT, list(rows))


def finish_event(session: Session, *, event_id: int, values: dict[str, Any]) -> None:
    """Write the outcome of an event into its row (``values``: person_id, grid_code,
    applied, reason, facts, response_status, response_body)."""
    session.execute(_FINISH_EVENT, {**values, "event_id": event_id})


def events_of_person(session: Session, *, person_id: int) -> list[LifeEventRecord]:
    """The events about a person, in the order they happened."""
    statement = (
        select(LifeEventRecord)
        .where(LifeEventRecord.person_id == person_id)
        .order_by(LifeEventRecord.occurred_at, LifeEventRecord.id)
    )
    return list(session.scalars(statement))


# ----------------------------------------------------------------------------- subject clocks


def _build_lock(dialect_insert: Any) -> Any:
    table = _table(SubjectClock)
    statement = dialect_insert(table)
    return statement.on_conflict_do_update(
        index_elements=["person_id"], set_={"person_id": statement.excluded.person_id}
    ).returning(table.c.clocks)


def lock_subject(session: Session, *, person_id: int) -> dict[str, str]:
    """Lock the person's clock row (created if missing) until the transaction ends, and
    return its clocks, in one statement: an upsert locks the row it meets on PostgreSQL (a
    concurrent publish about the person waits here, then reads the clocks it left); SQLite
    has one writer at a time, so there the lock is the transaction's."""
    statement = _statement(session, "lock_subject", _build_lock)
    clocks: dict[str, str] = (
        session.execute(statement, {"person_id": person_id, "clocks": {}}).scalar_one() or {}
    )
    return dict(clocks)


_CLOCKS = _table(SubjectClock)
_SAVE_CLOCKS = (
    update(_CLOCKS)
    .where(_CLOCKS.c.person_id == bindparam("subject_id"))
    .values(clocks=bindparam("clocks"))
)


def save_clocks(session: Session, *, person_id: int, clocks: dict[str, str]) -> None:
    """Store the person's clocks."""
    session.execute(_SAVE_CLOCKS, {"subject_id": person_id, "clocks": clocks})


def save_clocks_many(session: Session, clocks: dict[int, dict[str, str]]) -> None:
    """Store the clocks of many persons (one executemany)."""
    if clocks:
        rows = [{"subject_id": person_id, "clocks": value} for person_id, value in clocks.items()]
        session.execute(_SAVE_CLOCKS, rows)


def take_write_lock(session: Session) -> None:
    """Make SQLite's one writer lock this transaction's now, with a write that changes no
    row: a transaction that reads first fails if another writer commits before its first
    write. (PostgreSQL locks rows, not the database: nothing to do there.)"""
    if _dialect(session) == "sqlite":
        session.execute(_TAKE_WRITE_LOCK)


_TAKE_WRITE_LOCK = update(_CLOCKS).where(literal_column("0") == 1).values(clocks=_CLOCKS.c.clocks)


def _build_ensure_clocks(dialect_insert: Any) -> Any:
    return dialect_insert(_CLOCKS).on_conflict_do_nothing(index_elements=["person_id"])


def lock_subjects(session: Session, *, person_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """Lock the clock rows of these persons (created if missing) until the transaction ends,
    in person id order, and return their clocks: two transactions locking some of the same
    persons take them in the same order, so neither waits for the other in a circle."""
    if not person_ids:
        return {}
    ordered = sorted(set(person_ids))
    statement = _statement(session, "ensure_clocks", _build_ensure_clocks)
    session.execute(statement, [{"person_id": person_id, "clocks": {}} for person_id in ordered])
    found: dict[int, dict[str, str]] = {}
    for start in range(0, len(ordered), _IN_CHUNK):
        query = (
            select(_CLOCKS.c.person_id, _CLOCKS.c.clocks)
            .where(_CLOCKS.c.person_id.in_(ordered[start : start + _IN_CHUNK]))
            .order_by(_CLOCKS.c.person_id)
        )
        if _dialect(session) == "postgresql":
            query = query.with_for_update()
        for person_id, clocks in session.execute(query):
            found[int(person_id)] = dict(clocks or {})
    return found


# ----------------------------------------------------------------------------- datasets


def held_rows(session: Session, model: type[HeldT], *, person_ids: Sequence[int]) -> list[HeldT]:
    """The rows of a dataset about these persons."""
    column = _table(model).c.person_id
    found: list[HeldT] = []
    unique_ids = list(dict.fromkeys(person_ids))
    for start in range(0, len(unique_ids), _IN_CHUNK):
        chunk = unique_ids[start : start + _IN_CHUNK]
        found.extend(session.scalars(select(model).where(column.in_(chunk))))
    return found


def held_values(
    session: Session, model: type[Base], *, person_ids: Sequence[int]
) -> list[Row[Any]]:
    """The rows of a dataset about these persons, as plain rows (Core: no ORM objects, a
    fifth of the cost when a bulk import compares thousands of existing rows)."""
    table = _table(model)
    found: list[Row[Any]] = []
    unique_ids = list(dict.fromkeys(person_ids))
    if not unique_ids:
        return found
    if session.get_bind().dialect.name == "sqlite":
        # One statement, one parameter (the ids as a JSON array, unpacked by SQLite's
        # json_each; the planner searches the person_id index for each): an IN list of
        # thousands costs SQLAlchemy a bound parameter, rendered and processed, per id.
        statement = select(table).where(table.c.person_id.in_(_JSON_IDS))
        ids = orjson.dumps(unique_ids).decode()
        return list(session.execute(statement, {"json_ids": ids}))
    for start in range(0, len(unique_ids), _IN_CHUNK):
        chunk = unique_ids[start : start + _IN_CHUNK]
        found.extend(session.execute(select(table).where(table.c.person_id.in_(chunk))))
    return found


def expire_loaded(session: Session, model: type[Base]) -> None:
    """Expire the session's loaded objects of a dataset (after Core updates of its table)."""
    for loaded in list(session.identity_map.values()):
        if isinstance(loaded, model):
            session.expire(loaded)


def insert_held(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Insert dataset rows (one executemany)."""
    bulk_insert(session, _table(model), rows)


def insert_held_columns(
    session: Session,
    model: type[Base],
    columns: Mapping[str, Sequence[Any]],
    *,
    shared: Mapping[str, Any],
) -> None:
    """Insert dataset rows given column by column (one executemany; see
    ``bulk_insert_columns``)."""
    bulk_insert_columns(session, _table(model), columns, shared=shared)


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows (all with the same keys) in one executemany (``bulk_insert_columns``)."""
    if not rows:
        return
    if session.get_bind().dialect.name != "sqlite":
        session.execute(insert(table), list(rows))
        return
    # Column by column: C-level loops (map) instead of a Python loop per value.
    columns = {name: list(map(itemgetter(name), rows)) for name in rows[0]}
    bulk_insert_columns(session, table, columns, shared={})


def bulk_insert_columns(
    session: Session,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    *,
    shared: Mapping[str, Any],
) -> None:
    """Insert rows given as columns (equally long lists of values) and values ``shared`` by
    every row, in one executemany. On SQLite the statement goes straight to the driver, each
    value through its column type's bind processor as SQLAlchemy would apply it, but a value
    shared by every row (the batch's timestamp, a state) converted once, and the Python-side
    defaults of absent columns evaluated once per batch: a third of the cost of a bulk import
    was SQLAlchemy's per-parameter work. On PostgreSQL, ``COPY`` (``_copy_columns``);
    elsewhere, Core's executemany."""
    count = len(next(iter(columns.values()))) if columns else 0
    if not count:
        return
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        _copy_columns(session, table, columns, shared=shared, count=count)
        return
    if dialect.name != "sqlite":
        names = [*columns, *shared]
        constant = tuple(shared.values())
        session.execute(
            insert(table),
            [
                dict(zip(names, values + constant, strict=True))
                for values in zip(*columns.values(), strict=True)
            ],
        )
        return
    constants = _with_defaults(table, columns, shared)
    quote = dialect.identifier_preparer.quote
    names = [*columns, *constants]
    column_list = ", ".join(quote(name) for name in names)
    marks = ", ".join("?" for _name in names)
    sql = f"INSERT INTO {quote(table.name)} ({column_list}) VALUES ({marks})"  # noqa: S608
    lists: list[Sequence[Any]] = [
        _bound_column(table, name, dialect, values) for name, values in columns.items()
    ]
    for name, value in constants.items():
        processor = _bind_processor(table, name, dialect)
        lists.append([processor(value) if processor is not None else value] * count)
    params = list(zip(*lists, strict=True))
    session.connection().exec_driver_sql(sql, params)


def _with_defaults(
    table: Table, columns: Mapping[str, Sequence[Any]], shared: Mapping[str, Any]
) -> dict[str, Any]:
    """The values shared by every row, with the Python-side defaults of the columns not
    given, evaluated once for the batch."""
    constants = dict(shared)
    for table_column in table.columns:
        name = table_column.name
        if name in columns or name in constants or table_column.default is None:
            continue
        default: Any = table_column.default
        if default.is_callable:
            constants[name] = default.arg(None)
        elif default.is_scalar:
            constants[name] = default.arg
    return constants


def _copy_columns(
    session: Session,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    *,
    shared: Mapping[str, Any],
    count: int,
) -> None:
    """PostgreSQL: the rows through ``COPY ... FROM STDIN`` (psycopg's ``cursor.copy``), each
    value through its column type's bind processor as ``bulk_insert_columns`` does on
    SQLite. The same plain insert as an executemany (constraints, foreign keys and defaults
    alike), a few times faster: no statement per row, no SQLAlchemy parameter per value."""
    dialect = session.get_bind().dialect
    constants = _with_defaults(table, columns, shared)
    quote = dialect.identifier_preparer.quote
    names = [*columns, *constants]
    lists = [_bound_column(table, name, dialect, values) for name, values in columns.items()]
    for name, value in constants.items():
        processor = _bind_processor(table, name, dialect)
        lists.append([processor(value) if processor is not None else value] * count)
    column_list = ", ".join(quote(name) for name in names)
    statement = f"COPY {quote(table.name)} ({column_list}) FROM STDIN"
    driver: Any = session.connection().connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in zip(*lists, strict=True):
            copy.write_row(row)


def _bound_column(table: Table, name: str, dialect: Any, values: Sequence[Any]) -> Sequence[Any]:
    """A column's values as the driver takes them (SQLite): through the column type's bind
    processor, a value shared by every row converted once; dates and JSON in C-level loops
    (``map``) when every value allows it."""
    processor = _bind_processor(table, name, dialect)
    if processor is None:
        return values
    count = len(values)
    first = values[0]
    if values.count(first) == count:  # one shared value: convert it once
        return [processor(first)] * count
    column_type = table.c[name].type
    if isinstance(column_type, JSON) and None not in values:
        try:
            return list(map(bytes.decode, map(orjson.dumps, values)))
        except TypeError:
            pass  # a value orjson refuses: the type's own processor, value by value
    elif (
        isinstance(column_type, Date)
        and getattr(column_type.dialect_impl(dialect), "_storage_format", None)
        == _SQLITE_DATE_FORMAT
        and set(map(type, values)) == {date}
    ):
        # SQLite's DATE stores a date as its ISO text: date.isoformat, in C.
        return list(map(date.isoformat, values))
    return list(map(processor, values))


#: How SQLAlchemy's SQLite DATE type stores a date by default (what date.isoformat gives).
_SQLITE_DATE_FORMAT = sqlite.DATE._storage_format


def _bind_processor(table: Table, name: str, dialect: Any) -> Callable[[Any], Any] | None:
    """The column type's bind processor; for JSON, orjson first (about ten times faster than
    the json module; the text is equally valid JSON), the type's own for what it refuses."""
    column_type = table.c[name].type
    processor = column_type.dialect_impl(dialect).bind_processor(dialect)
    if processor is None or not isinstance(column_type, JSON):
        return processor

    def to_json(value: Any) -> Any:
        if value is None:
            return processor(value)
        try:
            return orjson.dumps(value).decode()
        except TypeError:
            return processor(value)

    return to_json


def update_held(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Update dataset rows by ``id`` (one executemany per set of changed columns)."""
    table = _table(model)
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        columns = tuple(sorted(key for key in row if key != "id"))
        by_columns.setdefault(columns, []).append(row)
    sqlite_driver = session.get_bind().dialect.name == "sqlite"
    for columns, group in by_columns.items():
        if sqlite_driver and _sqlite_update(session, table, columns, group):
            continue
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({column: bindparam(column) for column in columns})
        )
        params = [{**{key: row[key] for key in columns}, "row_id": row["id"]} for row in group]
        session.execute(statement, params, execution_options={"synchronize_session": False})


def _sqlite_update(
    session: Session, table: Table, names: Sequence[str], rows: Sequence[dict[str, Any]]
) -> bool:
    """Update rows by ``id`` straight through the driver (as ``bulk_insert_columns``
    inserts: each value through its column type's bind processor, the columns' Python-side
    ``onupdate`` values evaluated once); False, having done nothing, when a column's
    ``onupdate`` is not a plain value or function (Core then runs the update)."""
    dialect = session.get_bind().dialect
    constants: dict[str, Any] = {}
    for table_column in table.columns:
        onupdate: Any = table_column.onupdate
        if onupdate is None or table_column.name in names:
            continue
        if onupdate.is_callable:
            constants[table_column.name] = onupdate.arg(None)
        elif onupdate.is_scalar:
            constants[table_column.name] = onupdate.arg
        else:
            return False
    quote = dialect.identifier_preparer.quote
    assignments = ", ".join(f"{quote(name)} = ?" for name in [*names, *constants])
    sql = f"UPDATE {quote(table.name)} SET {assignments} WHERE id = ?"  # noqa: S608
    count = len(rows)
    lists: list[list[Any]] = []
    for name in names:
        values = [row[name] for row in rows]
        processor = _bind_processor(table, name, dialect)
        lists.append(values if processor is None else list(map(processor, values)))
    for name, value in constants.items():
        processor = _bind_processor(table, name, dialect)
        lists.append([processor(value) if processor is not None else value] * count)
    lists.append([row["id"] for row in rows])
    session.connection().exec_driver_sql(sql, list(zip(*lists, strict=True)))
    return True


def _place(model: type[Base]) -> ColumnElement[str]:
    """Where a held row lies: a tenancy in its unit's grid, any other row in its grid code
    (the person's grid when it was written)."""
    table = _table(model)
    if model is TenancyRecord:
        return unit_grid_code_column(table.c.unit_id)
    return cast(ColumnElement[str], table.c.grid_code)


def held_rows_in_scope(
    session: Session, model: type[HeldT], *, person_id: int, scopes: Sequence[str]
) -> list[HeldT]:
    """The rows of a dataset about a person whose place (``_place``) lies in one of the scopes
    (in SQL: an OR of ranges; no scope sees nothing), oldest first."""
    table = _table(model)
    statement = (
        select(model)
        .where(table.c.person_id == person_id, scope_condition(_place(model), scopes))
        .order_by(table.c.id)
    )
    return list(session.scalars(statement))


def placed_held_rows(
    session: Session, model: type[Base], *, person_id: int, scopes: Sequence[str]
) -> list[Row[Any]]:
    """As ``held_rows_in_scope``, as plain rows (Core) with their place as ``place``."""
    table = _table(model)
    place = _place(model)
    statement = (
        select(table, place.label("place"))
        .where(table.c.person_id == person_id, scope_condition(place, scopes))
        .order_by(table.c.id)
    )
    return list(session.execute(statement))


def allowance_of(session: Session, *, person_id: int) -> AllowanceRecord | None:
    """The person's allowance, if any."""
    statement = select(AllowanceRecord).where(AllowanceRecord.person_id == person_id)
    return session.scalars(statement).first()


def pension_of(session: Session, *, person_id: int) -> PensionRecord | None:
    """The person's pension, if any."""
    return session.scalars(
        select(PensionRecord).where(PensionRecord.person_id == person_id)
    ).first()


def allowances_of(session: Session, *, person_ids: Sequence[int]) -> dict[int, AllowanceRecord]:
    """The allowances of these persons, by person (one query; a person has one at most)."""
    statement = select(AllowanceRecord).where(AllowanceRecord.person_id.in_(list(person_ids)))
    return {row.person_id: row for row in session.scalars(statement)}


def pensions_of(session: Session, *, person_ids: Sequence[int]) -> dict[int, PensionRecord]:
    """The pensions of these persons, by person (one query; a person has one at most)."""
    statement = select(PensionRecord).where(PensionRecord.person_id.in_(list(person_ids)))
    return {row.person_id: row for row in session.scalars(statement)}


def marital_record_of(session: Session, *, person_id: int) -> MaritalRecord | None:
    """The person's marital record, if any."""
    statement = select(MaritalRecord).where(MaritalRecord.person_id == person_id)
    return session.scalars(statement).first()


def marital_records_of(session: Session, *, person_ids: Sequence[int]) -> list[MaritalRecord]:
    """The marital records of these persons (those who have one)."""
    found: list[MaritalRecord] = []
    for start in range(0, len(person_ids), _IN_CHUNK):
        chunk = list(person_ids[start : start + _IN_CHUNK])
        found.extend(
            session.scalars(select(MaritalRecord).where(MaritalRecord.person_id.in_(chunk)))
        )
    return found


def tenancies_of_pairs(
    session: Session, *, pairs: Sequence[tuple[int, int]]
) -> list[TenancyRecord]:
    """Every tenancy, of any status, of these ``(person id, unit id)`` pairs, oldest first."""
    wanted = set(pairs)
    found: list[TenancyRecord] = []
    ordered = sorted(wanted)
    for start in range(0, len(ordered), _IN_CHUNK):
        chunk = ordered[start : start + _IN_CHUNK]
        statement = (
            select(TenancyRecord)
            .where(
                TenancyRecord.person_id.in_({person_id for person_id, _unit in chunk}),
                TenancyRecord.unit_id.in_({unit_id for _person, unit_id in chunk}),
            )
            .order_by(TenancyRecord.since, TenancyRecord.id)
        )
        found.extend(
            tenancy
            for tenancy in session.scalars(statement)
            if (tenancy.person_id, tenancy.unit_id) in wanted
        )
    return found


def active_tenancies(
    session: Session, *, person_id: int, unit_id: int | None = None
) -> list[TenancyRecord]:
    """The person's active tenancies (in one unit, when given), oldest first."""
    conditions = [
        TenancyRecord.person_id == person_id,
        TenancyRecord.status == TenancyStatus.ACTIVE,
    ]
    if unit_id is not None:
        conditions.append(TenancyRecord.unit_id == unit_id)
    statement = select(TenancyRecord).where(*conditions).order_by(TenancyRecord.since)
    return list(session.scalars(statement))


def active_tenancies_of(
    session: Session, *, person_ids: Sequence[int]
) -> dict[int, list[TenancyRecord]]:
    """The active tenancies of these persons, by person, each's oldest first (one query)."""
    statement = (
        select(TenancyRecord)
        .where(
            TenancyRecord.person_id.in_(list(person_ids)),
            TenancyRecord.status == TenancyStatus.ACTIVE,
        )
        .order_by(TenancyRecord.person_id, TenancyRecord.since)
    )
    found: dict[int, list[TenancyRecord]] = {}
    for row in session.scalars(statement):
        found.setdefault(row.person_id, []).append(row)
    return found


def tenancy_by_key(
    session: Session, *, person_id: int, unit_id: int, since: Any
) -> TenancyRecord | None:
    """The tenancy of a person in a unit from a date, if any."""
    statement = select(TenancyRecord).where(
        TenancyRecord.person_id == person_id,
        TenancyRecord.unit_id == unit_id,
        TenancyRecord.since == since,
    )
    return session.scalars(statement).first()


def _regrid_statements() -> list[Any]:
    statements: list[Any] = []
    for model in DATASET_MODELS.values():
        table = _table(model)
        statements.append(
            update(table)
            .where(
                table.c.person_id == bindparam("subject_id"),
                table.c.grid_code != bindparam("new_grid"),
            )
            .values(grid_code=bindparam("new_grid"))
        )
    tasks = _table(Task)
    statements.append(
        update(tasks)
        .where(
            tasks.c.subject_person_id == bindparam("subject_id"),
            tasks.c.state == TaskState.OPEN,
            tasks.c.grid_code != bindparam("new_grid"),
        )
        .values(grid_code=bindparam("new_grid"))
    )
    return statements


_REGRID = _regrid_statements()


def regrid_person(session: Session, *, person_id: int, grid_code: str) -> None:
    """Move every dataset row and open task about a person to the person's new grid."""
    regrid_persons(session, {person_id: grid_code})


def regrid_persons(session: Session, grid_codes: dict[int, str]) -> None:
    """Move every dataset row and open task about each person (``{person id: grid code}``)
    to the person's new grid (one executemany per table)."""
    if not grid_codes:
        return
    rows = [
        {"subject_id": person_id, "new_grid": grid_code}
        for person_id, grid_code in sorted(grid_codes.items())
    ]
    for statement in _REGRID:
        session.execute(statement, rows)


def record_publication(session: Session, values: dict[str, Any]) -> None:
    """Log one published batch."""
    session.execute(insert(_table(Publication)).values(**values))


def count_held(session: Session, model: type[Base]) -> int:
    """How many rows a dataset holds."""
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def allowance_counts(session: Session) -> dict[AllowanceStatus, int]:
    """Allowances per status."""
    statement = select(AllowanceRecord.status, func.count()).group_by(AllowanceRecord.status)
    return {status: n for status, n in session.execute(statement)}


def pension_counts(session: Session) -> dict[PensionStatus, int]:
    """Pensions per status."""
    statement = select(PensionRecord.status, func.count()).group_by(PensionRecord.status)
    return {status: n for status, n in session.execute(statement)}


# ----------------------------------------------------------------------------- outbox

_OUTBOX = _table(OutboxEntry)
# Literals, not parameters: the planner must see them to use the partial indexes.
_UNDELIVERED: tuple[ColumnElement[Any], ...] = (
    literal_column("'pending'"),
    literal_column("'claimed'"),
)


def insert_outbox(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert outbox entries (one executemany) in the caller's transaction."""
    bulk_insert(session, _OUTBOX, rows)


def insert_outbox_columns(
    session: Session, columns: Mapping[str, Sequence[Any]], *, shared: Mapping[str, Any]
) -> None:
    """Insert outbox entries given column by column (one executemany)."""
    bulk_insert_columns(session, _OUTBOX, columns, shared=shared)


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(_OUTBOX.c.state == OutboxState.PENDING, _OUTBOX.c.available_at <= now),
        and_(_OUTBOX.c.state == OutboxState.CLAIMED, _OUTBOX.c.claimed_until < now),
    )


def outbox_has_due(session: Session, *, now: datetime) -> bool:
    """True when some entry may be claimed (a read: idle polls take no write lock)."""
    statement = select(_OUTBOX.c.id).where(_OUTBOX.c.state.in_(_UNDELIVERED), _due(now)).limit(1)
    return session.execute(statement).first() is not None


def claim_outbox(
    session: Session, *, worker_id: str, now: datetime, lease_until: datetime, batch: int
) -> list[int]:
    """Claim up to ``batch`` deliverable entries for a worker; their ids, oldest first.

    Deliverable: pending and due, or claimed by a worker whose lease has run out. An entry
    waits while an older undelivered entry about the same person exists, so that each
    person's entries are delivered in order. One UPDATE: on PostgreSQL its subquery locks
    with ``FOR UPDATE SKIP LOCKED`` (concurrent workers take different rows); on SQLite the
    statement is the transaction's first write, so it holds the one writer lock.
    """
    older = _OUTBOX.alias("older")
    blocked = exists().where(
        older.c.subject_person_id == _OUTBOX.c.subject_person_id,
        older.c.id < _OUTBOX.c.id,
        older.c.state.in_(_UNDELIVERED),
    )
    return claim_batch(
        session,
        _OUTBOX,
        claimable=and_(_OUTBOX.c.state.in_(_UNDELIVERED), _due(now), ~blocked),
        batch=batch,
        claimed_state=OutboxState.CLAIMED,
        worker_id=worker_id,
        lease_until=lease_until,
    )


# Built once, with expanding IN lists: the worker runs them for every chunk it delivers.
_ENTRY_IDS: BindParameter[Any] = bindparam("entry_ids", expanding=True)
_HOLD = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(_ENTRY_IDS), _OUTBOX.c.state.in_(_UNDELIVERED))
    .values(
        claimed_by=bindparam("worker_id", type_=_OUTBOX.c.claimed_by.type),
        claimed_until=bindparam("until", type_=_OUTBOX.c.claimed_until.type),
    )
    .returning(
        _OUTBOX.c.id,
        _OUTBOX.c.topic,
        _OUTBOX.c.subject_person_id,
        _OUTBOX.c.subject_grid_code,
        _OUTBOX.c.payload,
        _OUTBOX.c.attempts,
    )
)
_DELIVERED_CONSUMERS = select(
    _table(OutboxDelivery).c.entry_id, _table(OutboxDelivery).c.consumer
).where(_table(OutboxDelivery).c.entry_id.in_(_ENTRY_IDS))
_MARK_DELIVERED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(_ENTRY_IDS))
    .values(
        state=OutboxState.DELIVERED,
        delivered_at=bindparam("now", type_=_OUTBOX.c.delivered_at.type),
        claimed_until=None,
        last_error=None,
    )
)


def hold_entries(
    session: Session, *, entry_ids: Sequence[int], worker_id: str, until: datetime
) -> list[Any]:
    """Renew a worker's lease on those of the entries still undelivered, as the first write
    of their delivery transaction; ``(id, topic, subject_person_id, subject_grid_code,
    payload, attempts)`` of each, oldest first. The write comes first so that SQLite takes
    its writer lock before reading (no stale snapshot), and PostgreSQL locks the rows, so a
    second worker delivering the same entries waits for this one."""
    result = session.execute(
        _HOLD, {"entry_ids": list(entry_ids), "worker_id": worker_id, "until": until}
    )
    return sorted(result.all(), key=itemgetter(0))


def outbox_entry(session: Session, *, entry_id: int) -> OutboxEntry | None:
    """An outbox entry by id, if any."""
    return session.get(OutboxEntry, entry_id)


def delivered_consumers(session: Session, *, entry_ids: Sequence[int]) -> dict[int, set[str]]:
    """``{entry id: consumers that have applied it}``."""
    done: dict[int, set[str]] = {}
    for entry_id, consumer in session.execute(_DELIVERED_CONSUMERS, {"entry_ids": list(entry_ids)}):
        done.setdefault(entry_id, set()).add(consumer)
    return done


# Built once: the worker runs them for every delivery.
_INSERT_DELIVERY = insert(_table(OutboxDelivery))


def insert_delivery(session: Session, *, entry_id: int, consumer: str, worker: str) -> None:
    """Record that a consumer applied an entry (a unique key refuses a second record)."""
    session.execute(
        _INSERT_DELIVERY, {"entry_id": entry_id, "consumer": consumer, "worker": worker}
    )


def insert_deliveries(
    session: Session, *, entry_ids: Sequence[int], consumer: str, worker: str
) -> None:
    """Record that a consumer applied these entries (one executemany; the unique key refuses
    the whole statement when one of them has a record already)."""
    bulk_insert_columns(
        session,
        _table(OutboxDelivery),
        {"entry_id": list(entry_ids)},
        shared={"consumer": consumer, "worker": worker},
    )


def mark_delivered(session: Session, *, entry_ids: Sequence[int], now: datetime) -> None:
    """Every consumer applied these entries."""
    if entry_ids:
        session.execute(_MARK_DELIVERED, {"entry_ids": list(entry_ids), "now": now})


def mark_failed(
    session: Session, *, entry_id: int, error: str, available_at: datetime, dead: bool
) -> None:
    """A consumer failed: try again from ``available_at``, or give up (dead)."""
    session.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id == entry_id)
        .values(
            state=OutboxState.DEAD if dead else OutboxState.PENDING,
            available_at=available_at,
            claimed_until=None,
            last_error=error,
        )
    )


def outbox_counts(session: Session) -> dict[str, int]:
    """Entries per state."""
    statement = select(_OUTBOX.c.state, func.count()).group_by(_OUTBOX.c.state)
    return {str(state): n for state, n in session.execute(statement)}


def deliveries_of(session: Session, *, entry_ids: Sequence[int]) -> list[Any]:
    """``(entry_id, consumer)`` of the deliveries of these entries."""
    table = _table(OutboxDelivery)
    statement = select(table.c.entry_id, table.c.consumer).where(
        table.c.entry_id.in_(list(entry_ids))
    )
    return list(session.execute(statement).all())


def outbox_of_event(session: Session, *, event_id: int) -> list[OutboxEntry]:
    """The outbox entries an event wrote (its id is in their payload)."""
    statement = (
        select(OutboxEntry)
        .where(OutboxEntry.payload["event_id"].as_integer() == event_id)
        .order_by(OutboxEntry.id)
    )
    return list(session.scalars(statement))


# ----------------------------------------------------------------------------- retention


def outbox_window(session: Session, *, after: int, size: int) -> Window | None:
    """The next ``size`` outbox entries by id after ``after`` (see ``kit.queue.next_window``)."""
    return next_window(session, _OUTBOX, after=after, size=size)


def finished_outbox_ids(
    session: Session,
    *,
    window: Window,
    delivered_before: datetime,
    dead_before: datetime,
    kept: Callable[[ColumnElement[Any]], ColumnElement[bool]],
    lock: bool,
) -> list[int]:
    """The entries of a window of ids that the purge may delete, oldest first: delivered
    before ``delivered_before``, or dead and last tried before ``dead_before``, and not
    ``kept`` (given the entry's id column: e.g. webhook deliveries still point at it).
    Pending and claimed entries never are. With ``lock``, PostgreSQL locks them, skipping
    rows another transaction holds."""
    statement = (
        select(_OUTBOX.c.id)
        .where(
            _OUTBOX.c.id > window.after,
            _OUTBOX.c.id <= window.last,
            or_(
                and_(
                    _OUTBOX.c.state == OutboxState.DELIVERED,
                    _OUTBOX.c.delivered_at < delivered_before,
                ),
                and_(_OUTBOX.c.state == OutboxState.DEAD, _OUTBOX.c.available_at < dead_before),
            ),
            ~kept(_OUTBOX.c.id),
        )
        .order_by(_OUTBOX.c.id)
    )
    if lock and _dialect(session) == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return list(session.execute(statement).scalars())


def count_consumer_records(session: Session, *, entry_ids: Sequence[int]) -> int:
    """How many consumers' delivery records these entries have."""
    table = _table(OutboxDelivery)
    total = 0
    for start in range(0, len(entry_ids), _IN_CHUNK):
        chunk = list(entry_ids[start : start + _IN_CHUNK])
        total += session.execute(
            select(func.count()).select_from(table).where(table.c.entry_id.in_(chunk))
        ).scalar_one()
    return int(total)


def delete_outbox_entries(session: Session, *, entry_ids: Sequence[int]) -> tuple[int, int]:
    """Delete entries and their consumers' delivery records; ``(records, entries)`` deleted."""
    table = _table(OutboxDelivery)
    records = entries = 0
    for start in range(0, len(entry_ids), _IN_CHUNK):
        chunk = list(entry_ids[start : start + _IN_CHUNK])
        records += _rowcount(session.execute(delete(table).where(table.c.entry_id.in_(chunk))))
        entries += _rowcount(session.execute(delete(_OUTBOX).where(_OUTBOX.c.id.in_(chunk))))
    return records, entries


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


# ----------------------------------------------------------------------------- tasks


def insert_tasks(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert tasks, all with the same keys (one executemany; unique per event, kind and
    assignee: a second one fails the statement)."""
    bulk_insert(session, _table(Task), rows)


def tasks_for(
    session: Session,
    *,
    assignee_kind: AssigneeKind,
    assignees: Sequence[str],
    state: TaskState | None = TaskState.OPEN,
    limit: int = 100,
) -> list[Task]:
    """Tasks of these assignees (open ones by default), the most urgent first."""
    conditions: list[ColumnElement[bool]] = [
        Task.assignee_kind == assignee_kind,
        Task.assignee.in_(list(assignees)),
    ]
    if state is not None:
        conditions.append(Task.state == state)
    statement = select(Task).where(*conditions).order_by(Task.due_at, Task.id).limit(limit)
    return list(session.scalars(statement))


def tasks_of_event(session: Session, *, event_id: int) -> list[Task]:
    """The tasks an event created."""
    statement = select(Task).where(Task.created_by_event_id == event_id).order_by(Task.id)
    return list(session.scalars(statement))


def tasks_of_person(session: Session, *, person_id: int) -> list[Task]:
    """The tasks about a person."""
    statement = select(Task).where(Task.subject_person_id == person_id).order_by(Task.id)
    return list(session.scalars(statement))


def _task_conditions(
    *,
    assignee_kind: AssigneeKind,
    assignees: Sequence[str] | None,
    scopes: Sequence[str],
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        Task.assignee_kind == assignee_kind,
        scope_condition(_table(Task).c.grid_code, scopes),
    ]
    if assignees is not None:
        conditions.append(Task.assignee.in_(list(assignees)))
    return conditions


def task_page(
    session: Session,
    *,
    assignee_kind: AssigneeKind,
    assignees: Sequence[str] | None,
    scopes: Sequence[str],
    state: TaskState,
    limit: int,
    offset: int = 0,
) -> list[Task]:
    """Tasks of these assignees (None: any) whose grid lies in the scopes, in one state:
    open ones the most urgent first, done ones the latest first."""
    conditions = _task_conditions(assignee_kind=assignee_kind, assignees=assignees, scopes=scopes)
    order = (
        (Task.due_at, Task.id) if state is TaskState.OPEN else (Task.done_at.desc(), Task.id.desc())
    )
    statement = (
        select(Task)
        .where(*conditions, Task.state == state)
        .order_by(*order)
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(statement))


def visible_task(
    session: Session,
    *,
    task_id: int,
    assignee_kind: AssigneeKind,
    assignees: Sequence[str] | None,
    scopes: Sequence[str],
) -> Task | None:
    """The task if these assignees in these scopes see it, locked for an update."""
    conditions = _task_conditions(assignee_kind=assignee_kind, assignees=assignees, scopes=scopes)
    statement = select(Task).where(Task.id == task_id, *conditions).with_for_update()
    return session.scalars(statement).first()


def allowance_person_ids(session: Session, *, grid_code: str, status: AllowanceStatus) -> list[int]:
    """The person ids of a grid's allowances in a status, lowest first."""
    statement = (
        select(AllowanceRecord.person_id)
        .where(AllowanceRecord.grid_code == grid_code, AllowanceRecord.status == status)
        .order_by(AllowanceRecord.person_id)
    )
    return list(session.scalars(statement))


def count_events_with_prefix(session: Session, *, prefix: str) -> int:
    """How many events have a source id starting with ``prefix`` (a range on the key)."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    statement = select(func.count()).where(
        LifeEventRecord.source_event_id >= prefix, LifeEventRecord.source_event_id < upper
    )
    return int(session.scalar(statement) or 0)


# ----------------------------------------------------------------------------- bulk imports


def import_job_of_file(session: Session, *, dataset: str, fingerprint: str) -> ImportJob | None:
    """The import job of this file into this dataset, if any."""
    statement = select(ImportJob).where(
        ImportJob.dataset == dataset, ImportJob.fingerprint == fingerprint
    )
    return session.scalars(statement).first()


def insert_import_job(session: Session, values: dict[str, Any]) -> ImportJob:
    """Insert an import job."""
    job = ImportJob(**values)
    session.add(job)
    session.flush()
    return job


def claim_import_step(session: Session, *, job_id: int, rows_done: int, phase: str) -> bool:
    """Take the job's row for this step (a write first: SQLite's writer lock, PostgreSQL's
    row lock) if it still stands where this process left it; False when another process
    moved it on."""
    table = _table(ImportJob)
    result = session.execute(
        update(table)
        .where(table.c.id == job_id, table.c.rows_done == rows_done, table.c.phase == phase)
        .values(checkpoint_at=func.current_timestamp())
    )
    return cast(int, getattr(result, "rowcount", 0)) == 1


def save_import_job(session: Session, *, job_id: int, values: dict[str, Any]) -> None:
    """Write the job's checkpoint and counters."""
    table = _table(ImportJob)
    session.execute(update(table).where(table.c.id == job_id).values(**values))


def get_import_job(session: Session, *, job_id: int) -> ImportJob | None:
    """An import job by id."""
    return session.get(ImportJob, job_id)


# ----------------------------------------------------------------------------- scoreboard


def last_publications(session: Session) -> dict[str, datetime]:
    """Per dataset, the time of its last batch with at least one accepted row."""
    table = _table(Publication)
    statement = (
        select(table.c.dataset, func.max(table.c.published_at))
        .where(table.c.received > table.c.rejected)
        .group_by(table.c.dataset)
    )
    return {dataset: at for dataset, at in session.execute(statement)}


def publication_rows(session: Session, *, since: datetime) -> dict[str, tuple[int, int]]:
    """Per department, dataset rows received and rejected since then."""
    table = _table(Publication)
    statement = (
        select(table.c.department, func.sum(table.c.received), func.sum(table.c.rejected))
        .where(table.c.published_at >= since)
        .group_by(table.c.department)
    )
    return {
        department: (int(received or 0), int(rejected or 0))
        for department, received, rejected in session.execute(statement)
    }


def _lag_seconds(session: Session) -> ColumnElement[Any]:
    table = _table(LifeEventRecord)
    if _dialect(session) == "postgresql":
        return func.extract("epoch", table.c.received_at - table.c.occurred_at)
    return (func.julianday(table.c.received_at) - func.julianday(table.c.occurred_at)) * 86400.0


def event_lags(session: Session, *, since: datetime) -> dict[str, tuple[int, float | None]]:
    """Per department, life events received since then and the median of their lag from
    ``occurred_at`` to ``received_at`` in seconds: the middle of the sorted lags, read by
    the database (LIMIT/OFFSET), so no list of lags is loaded, on either backend."""
    table = _table(LifeEventRecord)
    counts = session.execute(
        select(table.c.department, func.count())
        .where(table.c.received_at >= since)
        .group_by(table.c.department)
    ).all()
    lag = _lag_seconds(session)
    found: dict[str, tuple[int, float | None]] = {}
    for department, count in counts:
        middle = session.execute(
            select(lag)
            .where(table.c.department == department, table.c.received_at >= since)
            .order_by(lag)
            .limit(1 if count % 2 else 2)
            .offset((count - 1) // 2)
        ).scalars()
        values = [float(value) for value in middle]
        found[department] = (count, sum(values) / len(values) if values else None)
    return found
