"""Administration of the catalogue at run time: overrides of a minor class for the whole
city or for one district, laid over ``catalogue.toml``.

An override may change the responsible department, the deadline of each priority and the
four criteria texts; a field it leaves empty keeps the value below it. For a case in a
district the value of a field is the district's override, else the city's, else the
file's. Routing (at intake) and the deadline (at dispatch) read the effective class, so an
edit applies to the next case routed or dispatched; cases already dispatched keep their
deadline. Every set and removal is kept in ``category_override_changes`` with who and when.

Reading is for everyone signed in; changing is for administrators (403 otherwise). A bad
value is a 422 naming the field, and nothing changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from citygrid.access.models import Role
from citygrid.cases import repository
from citygrid.cases.catalogue import Category, WorkingDuration, load_catalogue
from citygrid.cases.models import (
    OVERRIDE_FIELDS,
    CategoryOverride,
    CategoryOverrideChange,
    Priority,
)
from citygrid.cases.schemas import (
    CatalogueClassRead,
    CatalogueMajorRead,
    CatalogueRead,
    CategoryOverrideChangeRead,
    CategoryOverrideRead,
    DeadlineRead,
    OverrideFields,
)
from citygrid.kit.actor import Actor
from citygrid.kit.errors import Forbidden, NotFound, ValidationFailed
from citygrid.kit.i18n import _, localised
from citygrid.kit.models import utcnow
from citygrid.registry.schemas import DEPARTMENT_SLUGS
from citygrid.territory import service as territory
from citygrid.territory.models import Level

SYSTEM_ROLE = "system"
HISTORY_LIMIT = 200
CRITERIA = ("register_zh", "register_en", "close_zh", "close_en")
DEADLINE_COLUMNS = {priority: f"deadline_{priority.value}" for priority in Priority}


# ============================================================================ effective


def city_codes_of(district_code: str) -> list[str]:
    """The codes a district's city may have under GB/T 2260 (prefecture 4401xx -> 440100;
    a municipality's district 1101xx -> 110000), the nearer first."""
    return [
        code
        for code in (district_code[:4] + "00", district_code[:2] + "0000")
        if code != district_code
    ]


def _layers(rows: Sequence[Any], district_code: str) -> list[Any]:
    """Override rows from the farthest (the city) to the nearest (the district)."""
    order = {
        code: rank for rank, code in enumerate([*city_codes_of(district_code)[::-1], district_code])
    }
    return sorted(
        (row for row in rows if row.district_code in order),
        key=lambda row: order[row.district_code],
    )


def _apply(category: Category, layers: Sequence[Any]) -> Category:
    changes: dict[str, Any] = {}
    deadlines = dict(category.deadlines)
    for row in layers:
        if row.department:
            changes["department"] = row.department
        for field in CRITERIA:
            value = getattr(row, field)
            if value:
                changes[field] = value
        for priority, column in DEADLINE_COLUMNS.items():
            value = getattr(row, column)
            if value:
                deadlines[priority] = WorkingDuration.parse(value)
    if deadlines != dict(category.deadlines):
        changes["deadlines"] = deadlines
    return dataclasses.replace(category, **changes) if changes else category


def effective_category(session: Session, *, category: Category, district_code: str) -> Category:
    """The class as it applies in a district: the file's, under the city's and the
    district's overrides (one indexed query)."""
    rows = repository.overrides_for(
        session, category=category.code, codes=[district_code, *city_codes_of(district_code)]
    )
    return _apply(category, _layers(rows, district_code)) if rows else category


# ============================================================================ checks


def require_admin(actor: Actor) -> None:
    """403 unless the actor is an administrator (or the system)."""
    if actor.role not in (Role.ADMIN.value, SYSTEM_ROLE):
        raise Forbidden(_("Only administrators may change the catalogue."))


def _category_or_422(code: str) -> Category:
    category = load_catalogue().get(code)
    if category is None:
        raise ValidationFailed.one("category", _("unknown category"))
    return category


def _territory_or_422(session: Session, code: str) -> Level:
    unit = None
    if code.isascii() and code.isdigit() and len(code) == 6:
        try:
            unit = territory.get_unit(session, code=code)
        except (NotFound, ValidationFailed):
            unit = None
    if unit is None or unit.level not in (Level.DISTRICT, Level.CITY):
        raise ValidationFailed.one("district_code", _("no district or city has this code"))
    return unit.level


def _checked(
    session: Session, category: Category, district_code: str, level: Level, data: OverrideFields
) -> dict[str, Any]:
    """The row values of an override, each field checked (422 naming the first bad one)."""
    values: dict[str, Any] = dict.fromkeys(OVERRIDE_FIELDS)
    if data.department is not None:
        if data.department not in DEPARTMENT_SLUGS:
            raise ValidationFailed.one("department", _("unknown department"))
        values["department"] = data.department
    for field in CRITERIA:
        value = getattr(data, field)
        if value is not None:
            values[field] = value
    if data.deadlines:
        for name, text in data.deadlines.items():
            priority = next((item for item in Priority if item.value == name), None)
            if priority is None:
                raise ValidationFailed.one(
                    f"deadlines.{name}", _("not a priority: use urgent, high or normal")
                )
            try:
                duration = WorkingDuration.parse(text)
            except ValueError:
                raise ValidationFailed.one(
                    f"deadlines.{priority.value}",
                    _("a number of working hours or days, like 4h or 2d"),
                ) from None
            if duration.hours > 2000:
                raise ValidationFailed.one(
                    f"deadlines.{priority.value}", _("at most 2000 working hours")
                )
            values[DEADLINE_COLUMNS[priority]] = str(duration)
    if all(value is None for value in values.values()):
        raise ValidationFailed.one(
            "department", _("change at least one of department, deadlines or criteria")
        )
    # The deadlines as they would apply (the city's override below a district's).
    below = category
    if level is Level.DISTRICT:
        rows = repository.overrides_for(
            session, category=category.code, codes=city_codes_of(district_code)
        )
        below = _apply(category, _layers(rows, district_code))
    after = _apply(below, [_Row(values)])
    urgent, high, normal = (after.deadlines[priority].hours for priority in Priority)
    if not urgent <= high <= normal:
        raise ValidationFailed.one("deadlines", _("must not shrink from urgent to high to normal"))
    return values


class _Row:
    """Override values shaped like a row, to lay them over a class before they are saved."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)


# ============================================================================ writes


def set_override(
    session: Session, actor: Actor, *, category_code: str, district_code: str, data: OverrideFields
) -> CategoryOverride:
    """Set (replace) the override of a minor class for a district or the city
    (administrators); the change is kept in the history."""
    require_admin(actor)
    category = _category_or_422(category_code)
    level = _territory_or_422(session, district_code)
    values = _checked(session, category, district_code, level, data)
    moment = utcnow()
    row = repository.override_row(session, district_code=district_code, category=category.code)
    if row is None:
        row = CategoryOverride(
            district_code=district_code, category=category.code, updated_by=actor.name, **values
        )
        row.created_at = row.updated_at = moment
        repository.add(session, row)
    else:
        for field, value in values.items():
            setattr(row, field, value)
        row.updated_by = actor.name
        row.updated_at = moment
    repository.add(
        session,
        CategoryOverrideChange(
            district_code=district_code,
            category=category.code,
            change="set",
            changed_by=actor.name,
            changed_at=moment,
            **values,
        ),
    )
    return row


def remove_override(
    session: Session, actor: Actor, *, category_code: str, district_code: str
) -> None:
    """Return a district (or the city) to the values below it for a class
    (administrators); 404 when there is no such override."""
    require_admin(actor)
    row = repository.override_row(session, district_code=district_code, category=category_code)
    if row is None:
        raise NotFound(_("The district has no override for this category."))
    repository.delete_row(session, row)
    repository.add(
        session,
        CategoryOverrideChange(
            district_code=district_code,
            category=category_code,
            change="remove",
            changed_by=actor.name,
            changed_at=utcnow(),
        ),
    )


# ============================================================================ reads


def list_overrides(session: Session, actor: Actor) -> list[CategoryOverride]:
    """Every override with who changed it (administrators)."""
    require_admin(actor)
    return repository.overrides(session)


def history(session: Session, actor: Actor, *, category_code: str) -> list[CategoryOverrideChange]:
    """The latest changes of a class's overrides, newest first (administrators)."""
    require_admin(actor)
    _category_or_422(category_code)
    return repository.override_changes(session, category=category_code, limit=HISTORY_LIMIT)


def _deadline_texts(row: Any) -> dict[Priority, str]:
    return {
        priority: getattr(row, column)
        for priority, column in DEADLINE_COLUMNS.items()
        if getattr(row, column)
    }


def override_read(row: CategoryOverride) -> CategoryOverrideRead:
    """The API shape of an override."""
    return CategoryOverrideRead(
        district_code=row.district_code,
        category=row.category,
        department=row.department,
        deadlines=_deadline_texts(row),
        register_zh=row.register_zh,
        register_en=row.register_en,
        close_zh=row.close_zh,
        close_en=row.close_en,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def change_read(row: CategoryOverrideChange) -> CategoryOverrideChangeRead:
    """The API shape of a change of an override."""
    return CategoryOverrideChangeRead(
        district_code=row.district_code,
        category=row.category,
        change="remove" if row.change == "remove" else "set",
        department=row.department,
        deadlines=_deadline_texts(row),
        register_zh=row.register_zh,
        register_en=row.register_en,
        close_zh=row.close_zh,
        close_en=row.close_en,
        changed_by=row.changed_by,
        changed_at=row.changed_at,
    )


def _class_read(base: Category, effective: Category) -> CatalogueClassRead:
    overridden = [
        field
        for field in ("department", *CRITERIA)
        if getattr(base, field) != getattr(effective, field)
    ] + [
        f"deadlines.{priority.value}"
        for priority in Priority
        if base.deadlines[priority] != effective.deadlines[priority]
    ]
    return CatalogueClassRead(
        code=effective.code,
        kind=effective.kind,
        major_code=effective.major_code,
        minor_code=effective.minor_code,
        name=effective.name,
        name_zh=effective.name_zh,
        name_en=effective.name_en,
        department=effective.department,
        deadlines={
            priority: DeadlineRead(amount=duration.amount, unit=duration.unit)
            for priority, duration in effective.deadlines.items()
        },
        register_zh=effective.register_zh,
        register_en=effective.register_en,
        close_zh=effective.close_zh,
        close_en=effective.close_en,
        overridden=overridden,
    )


def catalogue_view(
    session: Session, actor: Actor, *, district_code: str | None = None
) -> CatalogueRead:
    """The catalogue as it applies in a district or the city (the file's values when no
    code is given), by major class."""
    catalogue = load_catalogue()
    rows: list[Any] = []
    if district_code is not None:
        level = _territory_or_422(session, district_code)
        codes = (
            [district_code]
            if level is Level.CITY
            else [district_code, *city_codes_of(district_code)]
        )
        rows = repository.overrides_under(session, codes)
    by_category: dict[str, list[Any]] = {}
    for row in rows:
        by_category.setdefault(row.category, []).append(row)
    majors: dict[tuple[str, str], CatalogueMajorRead] = {}
    for base in catalogue:
        layers = _layers(by_category.get(base.code, []), district_code or "")
        effective = _apply(base, layers) if layers else base
        key = (base.kind.value, base.major_code)
        if key not in majors:
            majors[key] = CatalogueMajorRead(
                kind=base.kind,
                major_code=base.major_code,
                name=localised(base.major_name_zh, base.major_name_en),
                classes=[],
            )
        majors[key].classes.append(_class_read(base, effective))
    return CatalogueRead(
        version=catalogue.version, district_code=district_code, majors=list(majors.values())
    )


def class_view(
    session: Session, actor: Actor, *, category_code: str, district_code: str | None = None
) -> CatalogueClassRead:
    """One class as it applies in a district or the city (404 for an unknown code)."""
    base = load_catalogue().get(category_code)
    if base is None:
        raise NotFound(_("No category has this code."))
    if district_code is None:
        return _class_read(base, base)
    _territory_or_422(session, district_code)
    return _class_read(
        base, effective_category(session, category=base, district_code=district_code)
    )
