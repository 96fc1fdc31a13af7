"""The rules of the case loop: intake, the transition table, deadlines, routing, duplicates,
"me too", overdue escalation, and the district overrides of the catalogue.

The seven steps of digital urban management (information collection, registration,
dispatch, handling, feedback, verification and closure, evaluation) are the states and
actions of ``TRANSITIONS``::

    reported --register--> registered --dispatch--> dispatched --accept--> handling
    reported --reject----> rejected            dispatched --return--> registered
    handling --feedback--> handled --verify pass--> closed --evaluate--> evaluated
                           handled --verify fail--> handling (rework_count + 1)
    dispatched / handling --escalate--> (same state; once, when overdue; system only)

Checks, in this order, and nothing changes when one fails:

1. the case is visible to the actor (its grid code under one of the actor's scopes;
   the ``system`` role sees every case) - otherwise 404 ``not_found``;
2. the action is allowed from the case's state - otherwise 409 ``invalid_transition``
   naming the state, the action and the actions that are allowed;
3. the actor's role may take the action, and the transition's rule holds (a department
   officer acts only on cases of their own department) - otherwise 403 ``forbidden``;
4. the action's own fields (department, result, score, reason, note) - otherwise 422.

Deadlines: the clock starts at dispatch; the category's deadline for the case's priority
(overrides included) is added in working time (``citygrid.cases.calendar``). A rework
keeps the deadline: the department had its time. A case is overdue while it is dispatched
or handling past its deadline; ``escalate_overdue`` records one escalation per case.

Routing: the catalogue names a department for each category; administrators may override
it, the deadlines and the criteria for the city or a district (``category_overrides``, see
``citygrid.cases.catalogue_admin``). Dispatch sends the case to the routed department
unless the dispatcher names another, with the deadline of the class as it applies then.

Every creation and transition writes a ``case_transitions`` row and a typed event
(``citygrid.cases.events``) in the same transaction. Services only flush.
"""

from __future__ import annotations

import enum
import math
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from citygrid.access.models import Role
from citygrid.cases import catalogue_admin, repository
from citygrid.cases.calendar import working_time_between
from citygrid.cases.catalogue import Catalogue, Category, load_catalogue
from citygrid.cases.events import CaseChanged, CaseCreated, emit
from citygrid.cases.models import (
    DEADLINE_STATES,
    OPEN_STATES,
    Action,
    Case,
    CaseSource,
    CaseState,
    CaseTransition,
    CategoryOverride,
)
from citygrid.cases.schemas import (
    IDEMPOTENCY_KEY_MAX,
    CaseCreate,
    CaseDetail,
    CaseList,
    CaseRead,
    CategoryList,
    CategoryOverrideSet,
    CategoryRead,
    DeadlineRead,
    TransitionCreate,
    TransitionRead,
)
from citygrid.kit.actor import Actor
from citygrid.kit.errors import Conflict, Forbidden, NotFound, ValidationFailed
from citygrid.kit.i18n import _, localised
from citygrid.kit.models import utcnow
from citygrid.registry.schemas import DEPARTMENT_SLUGS
from citygrid.territory import service as territory
from citygrid.territory.locator import Locator

SYSTEM_ROLE = "system"
#: A resident on the public report page (no account, no scope).
CITIZEN_ROLE = "citizen"
#: An Open311 client application: it may file, and nothing else (no scope, no step).
OPEN311_ROLE = "open311_client"

# 12 random bytes are 16 URL-safe characters (96 bits): unguessable, fits cases.ref (24).
_REF_BYTES = 12

_IDEMPOTENCY_KEY_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.:")

METRES_PER_DEGREE = 111_320.0
EARTH_RADIUS_M = 6_371_008.8

LIST_LIMIT_MAX = 200
ESCALATION_BATCH = 500


class InvalidTransition(Conflict):
    """The action is not allowed from the case's current state."""

    code = "invalid_transition"


class CaseNotOpen(Conflict):
    """The case is no longer open (closed, evaluated or rejected)."""

    code = "case_not_open"


# ============================================================================ the table


class Rule(enum.StrEnum):
    """What must hold besides the actor's role (scope is always checked first)."""

    IN_SCOPE = "in_scope"  # the actor's scope covers the case's grid
    OWN_DEPARTMENT = "own_department"  # ... and the case is with the actor's department
    STAFF_OR_REPORTER = "staff_or_reporter"  # ... or the actor filed the case
    OVERDUE_ONCE = "overdue_once"  # past the deadline and not yet escalated


@dataclass(frozen=True, slots=True)
class Transition:
    """A row of the transition table: from ``source`` by ``action`` to ``target`` (for
    verify: on pass; ``fail_target`` on fail), by one of ``roles``, if ``rule`` holds."""

    source: CaseState
    action: Action
    target: CaseState
    roles: frozenset[str]
    rule: Rule
    fail_target: CaseState | None = None


_DISPATCHERS = frozenset({Role.DISPATCHER.value, Role.DISTRICT_OFFICIAL.value})
_DEPARTMENT = frozenset({Role.DEPARTMENT_OFFICER.value})
_GRID_WORKER = frozenset({Role.GRID_WORKER.value})
_SYSTEM = frozenset({SYSTEM_ROLE})

TRANSITIONS: dict[tuple[CaseState, Action], Transition] = {
    (row.source, row.action): row
    for row in (
        Transition(
            CaseState.REPORTED, Action.REGISTER, CaseState.REGISTERED, _DISPATCHERS, Rule.IN_SCOPE
        ),
        Transition(
            CaseState.REPORTED, Action.REJECT, CaseState.REJECTED, _DISPATCHERS, Rule.IN_SCOPE
        ),
        Transition(
            CaseState.REGISTERED,
            Action.DISPATCH,
            CaseState.DISPATCHED,
            _DISPATCHERS,
            Rule.IN_SCOPE,
        ),
        Transition(
            CaseState.DISPATCHED,
            Action.RETURN,
            CaseState.REGISTERED,
            _DEPARTMENT,
            Rule.OWN_DEPARTMENT,
        ),
        Transition(
            CaseState.DISPATCHED,
            Action.ACCEPT,
            CaseState.HANDLING,
            _DEPARTMENT,
            Rule.OWN_DEPARTMENT,
        ),
        Transition(
            CaseState.HANDLING,
            Action.FEEDBACK,
            CaseState.HANDLED,
            _DEPARTMENT,
            Rule.OWN_DEPARTMENT,
        ),
        Transition(
            CaseState.HANDLED,
            Action.VERIFY,
            CaseState.CLOSED,
            _GRID_WORKER,
            Rule.IN_SCOPE,
            fail_target=CaseState.HANDLING,
        ),
        Transition(
            CaseState.CLOSED,
            Action.EVALUATE,
            CaseState.EVALUATED,
            _DISPATCHERS,
            Rule.STAFF_OR_REPORTER,
        ),
        Transition(
            CaseState.DISPATCHED,
            Action.ESCALATE,
            CaseState.DISPATCHED,
            _SYSTEM,
            Rule.OVERDUE_ONCE,
        ),
        Transition(
            CaseState.HANDLING, Action.ESCALATE, CaseState.HANDLING, _SYSTEM, Rule.OVERDUE_ONCE
        ),
    )
}

#: Who may file a case (citizens come in by the public page as ``CITIZEN_ROLE``, Open311
#: clients by their own door). Grid workers only inside their own territory.
INTAKE_ROLES = frozenset(
    {
        Role.GRID_WORKER.value,
        Role.DISPATCHER.value,
        Role.COMMUNITY_OFFICIAL.value,
        Role.STREET_OFFICIAL.value,
        Role.DISTRICT_OFFICIAL.value,
        Role.CITY_OFFICIAL.value,
        SYSTEM_ROLE,
        CITIZEN_ROLE,
        OPEN311_ROLE,
    }
)

#: Fields of ``TransitionCreate`` each action uses besides ``action`` and ``note``.
_ACTION_FIELDS: dict[Action, frozenset[str]] = {
    Action.REGISTER: frozenset({"priority"}),
    Action.REJECT: frozenset({"reason", "duplicate_of"}),
    Action.DISPATCH: frozenset({"department", "priority"}),
    Action.VERIFY: frozenset({"result"}),
    Action.EVALUATE: frozenset({"score"}),
}

#: Actions whose note is required (the reason is the point of the step).
_NOTE_REQUIRED = frozenset({Action.RETURN, Action.FEEDBACK})


def allowed_actions(state: CaseState) -> list[Action]:
    """The actions the transition table allows from a state."""
    return [action for (source, action) in TRANSITIONS if source is state]


def actions_for(actor: Actor, case: Case, *, now: datetime | None = None) -> list[Action]:
    """The actions this actor may take on this case now (its state, the actor's role and
    the transition's rule; escalation is the system's and never offered)."""
    moment = _now(now)
    if not covers(actor, case.grid_code):
        return []
    offered: list[Action] = []
    for action in allowed_actions(case.state):
        if action is Action.ESCALATE:
            continue
        try:
            _check_actor(actor, case, TRANSITIONS[(case.state, action)], moment)
        except (Forbidden, Conflict):
            continue
        offered.append(action)
    return offered


# ============================================================================ helpers


def new_case_ref() -> str:
    """A fresh opaque case reference (16 URL-safe characters)."""
    return secrets.token_urlsafe(_REF_BYTES)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else utcnow()


def covers(actor: Actor, grid_code: str) -> bool:
    """True when the actor's territorial scope includes the grid (system: everything)."""
    if actor.role == SYSTEM_ROLE:
        return True
    return any(grid_code.startswith(prefix) for prefix in actor.scopes if prefix)


def _scopes(actor: Actor) -> tuple[str, ...] | None:
    return None if actor.role == SYSTEM_ROLE else tuple(p for p in actor.scopes if p)


def visible_scopes(actor: Actor) -> tuple[str, ...] | None:
    """The territorial code prefixes whose cases the actor sees (None: every case)."""
    return _scopes(actor)


def _not_found() -> NotFound:
    return NotFound(_("No case has this id."))


def get_case(session: Session, actor: Actor, *, case_ref: str, for_update: bool = False) -> Case:
    """The case with a reference, if the actor's scope covers it (404 otherwise)."""
    case = repository.case_by_ref(session, case_ref, for_update=for_update)
    if case is None or not covers(actor, case.grid_code):
        raise _not_found()
    return case


def categories() -> Catalogue:
    """The validated catalogue."""
    return load_catalogue()


def _category_or_422(code: str, field: str = "category") -> Category:
    category = load_catalogue().get(code)
    if category is None:
        raise ValidationFailed.one(field, _("unknown category"))
    return category


def _check_department(department: str, field: str = "department") -> str:
    if department not in DEPARTMENT_SLUGS:
        raise ValidationFailed.one(field, _("unknown department"))
    return department


def route_department(session: Session, *, category: Category, district_code: str) -> str:
    """The department responsible for a category in a district (the district's override,
    else the city's, else the catalogue's)."""
    return catalogue_admin.effective_category(
        session, category=category, district_code=district_code
    ).department


def handling_hours(dispatched_at: datetime | None, handled_at: datetime) -> float | None:
    """Working hours from dispatch to feedback (None without a dispatch)."""
    if dispatched_at is None:
        return None
    return max(0.0, working_time_between(dispatched_at, handled_at).total_seconds() / 3600)


def is_overdue(case: Case, now: datetime) -> bool:
    """True while the case is with its department past the deadline."""
    return case.state in DEADLINE_STATES and case.deadline_at is not None and case.deadline_at < now


# ============================================================================ intake


@dataclass(frozen=True, slots=True)
class CaseIntake:
    """The outcome of a submission: the case, and whether this call created it (False when
    the idempotency key named an earlier submission)."""

    case: Case
    created: bool


def _check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or not set(key) <= _IDEMPOTENCY_KEY_CHARACTERS:
        raise ValidationFailed.one(
            "Idempotency-Key",
            _("use 1 to 64 letters, digits or - _ . : (a UUID is a good key)"),
        )
    return key


def _outside(reason: str) -> ValidationFailed:
    details = [{"field": "lat", "reason": reason}, {"field": "lon", "reason": reason}]
    return ValidationFailed(f"lat, lon: {reason}", details=details)


def _default_source(actor: Actor) -> CaseSource:
    if actor.role == Role.GRID_WORKER.value:
        return CaseSource.GRID_WORKER
    if actor.role == CITIZEN_ROLE:
        return CaseSource.CITIZEN
    if actor.kind == "client":
        return CaseSource.OPEN311
    return CaseSource.HOTLINE


def create_case(
    session: Session,
    actor: Actor,
    *,
    data: CaseCreate,
    locator: Locator,
    idempotency_key: str | None = None,
    source: CaseSource | None = None,
    now: datetime | None = None,
) -> CaseIntake:
    """File a case: category checked, point located to its grid, department routed.

    The same ``idempotency_key`` from the same reporter returns the first case instead.
    """
    if actor.role not in INTAKE_ROLES:
        raise Forbidden(_("Your role may not file cases."))
    key = _check_idempotency_key(idempotency_key)
    if key is not None:
        earlier = repository.case_by_idempotency_key(session, actor.name, key)
        if earlier is not None:
            return CaseIntake(earlier, created=False)
    category = _category_or_422(data.category)
    try:
        place = territory.locate_point(locator, lon=data.lon, lat=data.lat)
    except NotFound:
        raise _outside(_("the location is outside the city's grids")) from None
    grid_code = place.grid.code
    if actor.role == Role.GRID_WORKER.value and not covers(actor, grid_code):
        raise _outside(_("the location is outside your territory"))

    moment = _now(now)
    contact = data.reporter_contact
    values: dict[str, Any] = {
        "ref": new_case_ref(),
        "category": category.code,
        "kind": category.kind,
        "priority": data.priority,
        "state": CaseState.REPORTED,
        "description": data.description,
        "lon": data.lon,
        "lat": data.lat,
        "grid_code": grid_code,
        "community_code": place.community.code,
        "street_code": place.street.code,
        "district_code": place.district.code,
        "address": data.address,
        "source": source or _default_source(actor),
        "reporter_name": actor.name,
        "reporter_contact_name": contact.name if contact else None,
        "reporter_contact_phone": contact.phone if contact else None,
        "idempotency_key": key,
        "department": route_department(
            session, category=category, district_code=place.district.code
        ),
        "reported_at": moment,
        "rework_count": 0,
        "me_too_count": 0,
        "created_at": moment,
        "updated_at": moment,
    }
    case_id = repository.insert_case(session, values)
    if case_id is None:
        # A submit with this key won the race since the lookup above.
        earlier = repository.case_by_idempotency_key(session, actor.name, key or "")
        if earlier is None:  # pragma: no cover - the conflict names this very row
            raise Conflict(_("the record conflicts with one that already exists"))
        return CaseIntake(earlier, created=False)
    case = Case(id=case_id, duplicate_of=None, satisfaction=None, **values)
    for column in _UNSET_AT_INTAKE:
        setattr(case, column, None)
    repository.attach(session, case)
    repository.insert_transition(
        session,
        {
            "case_id": case_id,
            "grid_code": grid_code,
            "action": Action.REPORT,
            "from_state": None,
            "to_state": CaseState.REPORTED,
            "actor_name": actor.name,
            "actor_role": actor.role,
            "actor_department": actor.department,
            "at": moment,
            "note": None,
            "data": {"source": case.source.value, "priority": case.priority.value},
        },
    )
    emit(
        session,
        CaseCreated(
            case_id=case_id,
            ref=case.ref,
            category=case.category,
            priority=case.priority.value,
            state=case.state.value,
            grid_code=grid_code,
            department=case.department,
            source=case.source.value,
            lon=case.lon,
            lat=case.lat,
            at=moment,
        ),
    )
    return CaseIntake(case, created=True)


#: Columns a new case leaves empty; set on the attached object so reading them needs no query.
_UNSET_AT_INTAKE = (
    "registered_at",
    "dispatched_at",
    "deadline_at",
    "accepted_at",
    "handled_at",
    "closed_at",
    "evaluated_at",
    "escalated_at",
    "handling_hours",
    "closed_on_time",
)


# ============================================================================ transitions


def _transition_for(case: Case, action: Action) -> Transition:
    row = TRANSITIONS.get((case.state, action))
    if row is None:
        allowed = [allowed.value for allowed in allowed_actions(case.state)]
        raise InvalidTransition(
            _("A case that is {state} cannot take the action {action}.").format(
                state=case.state.value, action=action.value
            ),
            details={"state": case.state.value, "action": action.value, "allowed": allowed},
        )
    return row


def _check_actor(actor: Actor, case: Case, row: Transition, now: datetime) -> None:
    role_ok = actor.role in row.roles
    if row.rule is Rule.STAFF_OR_REPORTER:
        role_ok = role_ok or actor.name == case.reporter_name
    if not role_ok:
        raise Forbidden(
            _("Your role may not take the action {action} on this case.").format(
                action=row.action.value
            ),
            details={"action": row.action.value, "role": actor.role},
        )
    if row.rule is Rule.OWN_DEPARTMENT and actor.department != case.department:
        raise Forbidden(
            _("The case is with another department."),
            details={"action": row.action.value},
        )
    if row.rule is Rule.OVERDUE_ONCE and (
        case.escalated_at is not None or not is_overdue(case, now)
    ):
        raise InvalidTransition(
            _("Only an overdue case that was not escalated yet can be escalated."),
            details={"state": case.state.value, "action": row.action.value},
        )


def _check_fields(request: TransitionCreate) -> None:
    used = _ACTION_FIELDS.get(request.action, frozenset()) | {"action", "note"}
    for field in sorted(request.model_fields_set - used):
        if getattr(request, field) is not None:
            raise ValidationFailed.one(
                field,
                _("not used by the action {action}").format(action=request.action.value),
            )
    if request.action in _NOTE_REQUIRED and not request.note:
        raise ValidationFailed.one("note", _("say what was done or why"))


def apply_transition(
    session: Session,
    actor: Actor,
    *,
    case_ref: str,
    request: TransitionCreate,
    now: datetime | None = None,
) -> Case:
    """Take one step of the loop on a case (see the module docstring for the checks)."""
    case = get_case(session, actor, case_ref=case_ref, for_update=True)
    return _apply(session, actor, case, request, _now(now))


def _apply(
    session: Session, actor: Actor, case: Case, request: TransitionCreate, moment: datetime
) -> Case:
    row = _transition_for(case, request.action)
    _check_actor(actor, case, row, moment)
    _check_fields(request)
    before = case.state
    target = row.target
    data: dict[str, Any] = {}
    action = request.action
    if action is Action.REGISTER:
        if request.priority is not None:
            case.priority = request.priority
            data["priority"] = request.priority.value
        case.registered_at = moment
    elif action is Action.REJECT:
        data.update(_reject(session, actor, case, request, moment))
    elif action is Action.DISPATCH:
        data.update(_dispatch(session, case, request, moment))
    elif action is Action.RETURN:
        data["department"] = case.department
        case.dispatched_at = None
        case.deadline_at = None
    elif action is Action.ACCEPT:
        case.accepted_at = moment
    elif action is Action.FEEDBACK:
        case.handled_at = moment
        case.handling_hours = handling_hours(case.dispatched_at, moment)
    elif action is Action.VERIFY:
        target = _verify(case, request, row, moment)
        data["result"] = request.result
    elif action is Action.EVALUATE:
        if request.score is None:
            raise ValidationFailed.one("score", _("give a score from 1 to 5"))
        case.satisfaction = request.score
        case.evaluated_at = moment
        data["score"] = request.score
    elif action is Action.ESCALATE:
        case.escalated_at = moment
        data["deadline_at"] = case.deadline_at.isoformat() if case.deadline_at else None
    case.state = target
    case.updated_at = moment
    _record(session, actor, case, action, before, target, moment, request.note, data)
    return case


def _reject(
    session: Session, actor: Actor, case: Case, request: TransitionCreate, moment: datetime
) -> dict[str, Any]:
    reason = request.reason or ("duplicate" if request.duplicate_of else "not_meeting_criterion")
    if reason == "not_meeting_criterion":
        if request.duplicate_of is not None:
            raise ValidationFailed.one("duplicate_of", _("only for a rejection as a duplicate"))
        if not request.note:
            raise ValidationFailed.one(
                "note", _("say why the report does not meet the registration criterion")
            )
        return {"reason": reason}
    if request.duplicate_of is None:
        raise ValidationFailed.one("duplicate_of", _("name the case this one duplicates"))
    original = repository.case_by_ref(session, request.duplicate_of)
    if (
        original is None
        or original.id == case.id
        or not covers(actor, original.grid_code)
        or original.state not in OPEN_STATES
        or original.duplicate_of is not None
    ):
        raise ValidationFailed.one("duplicate_of", _("no other open case has this id"))
    case.duplicate_of = original.id
    # The duplicate's reporter saw the original's problem: count them once on it.
    _me_too(session, original, case.reporter_name, actor, moment)
    return {"reason": reason, "duplicate_of": original.ref}


def _dispatch(
    session: Session, case: Case, request: TransitionCreate, moment: datetime
) -> dict[str, Any]:
    department = _check_department(request.department or case.department)
    category = load_catalogue().get(case.category)
    if category is not None:
        # The deadlines as administrators set them for the case's district now.
        category = catalogue_admin.effective_category(
            session, category=category, district_code=case.district_code
        )
    if category is None:
        raise Conflict(
            _("The case's category is no longer in the catalogue; change the catalogue first."),
            details={"category": case.category},
        )
    if request.priority is not None:
        case.priority = request.priority
    deadline = category.deadline(case.priority)
    case.department = department
    case.dispatched_at = moment
    case.deadline_at = deadline.deadline_from(moment)
    return {
        "department": department,
        "priority": case.priority.value,
        "deadline": str(deadline),
        "deadline_at": case.deadline_at.isoformat(),
    }


def _verify(case: Case, request: TransitionCreate, row: Transition, moment: datetime) -> CaseState:
    if request.result is None:
        raise ValidationFailed.one("result", _("say pass or fail"))
    if request.result == "pass":
        case.closed_at = moment
        case.closed_on_time = case.deadline_at is None or moment <= case.deadline_at
        return row.target
    if not request.note:
        raise ValidationFailed.one("note", _("say what is still wrong"))
    case.rework_count += 1
    return row.fail_target or row.target


def _record(
    session: Session,
    actor: Actor,
    case: Case,
    action: Action,
    before: CaseState,
    after: CaseState,
    moment: datetime,
    note: str | None,
    data: dict[str, Any],
) -> None:
    repository.add(
        session,
        CaseTransition(
            case_id=case.id,
            grid_code=case.grid_code,
            action=action,
            from_state=before,
            to_state=after,
            actor_name=actor.name,
            actor_role=actor.role,
            actor_department=actor.department,
            at=moment,
            note=note,
            data=data,
        ),
    )
    _changed(session, actor, case, action.value, before, moment)


def _changed(
    session: Session, actor: Actor, case: Case, action: str, before: CaseState, moment: datetime
) -> None:
    emit(
        session,
        CaseChanged(
            case_id=case.id,
            ref=case.ref,
            grid_code=case.grid_code,
            action=action,
            from_state=before.value,
            to_state=case.state.value,
            department=case.department,
            deadline_at=case.deadline_at,
            overdue_escalated=case.escalated_at is not None,
            rework_count=case.rework_count,
            me_too_count=case.me_too_count,
            actor_role=actor.role,
            at=moment,
        ),
    )


# ============================================================================ me too


@dataclass(frozen=True, slots=True)
class MeToo:
    """The outcome of "me too": the case, and whether this reporter was counted now."""

    case: Case
    added: bool


def _me_too(
    session: Session, case: Case, reporter_name: str, actor: Actor, moment: datetime
) -> bool:
    if reporter_name == case.reporter_name:
        return False
    added = repository.insert_me_too(
        session,
        case_id=case.id,
        grid_code=case.grid_code,
        reporter_name=reporter_name,
        at=moment,
    )
    if added:
        count = repository.increment_me_too(session, case.id)
        set_committed_value(case, "me_too_count", count)
        _changed(session, actor, case, "me_too", case.state, moment)
    return added


def add_me_too(
    session: Session,
    actor: Actor,
    *,
    case_ref: str,
    reporter_name: str | None = None,
    now: datetime | None = None,
) -> MeToo:
    """Someone saw the same open case: counted once per reporter (``reporter_name``
    defaults to the actor's name; the original reporter is never counted)."""
    case = get_case(session, actor, case_ref=case_ref, for_update=True)
    if case.state not in OPEN_STATES:
        raise CaseNotOpen(_("The case is no longer open."), details={"state": case.state.value})
    added = _me_too(session, case, reporter_name or actor.name, actor, _now(now))
    return MeToo(case, added)


# ============================================================================ duplicates


@dataclass(frozen=True, slots=True)
class DuplicateSuggestion:
    """An open case of the same category nearby and recent, ``distance_m`` away."""

    case: Case
    distance_m: float


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def suggest_duplicates(
    session: Session, actor: Actor, *, case_ref: str
) -> list[DuplicateSuggestion]:
    """Open cases of the case's category within the category's radius and time window of
    it (either side), that the actor can see, nearest first."""
    case = get_case(session, actor, case_ref=case_ref)
    category = load_catalogue().get(case.category)
    if category is None:
        return []
    radius = float(category.duplicate_radius_m)
    window = timedelta(hours=category.duplicate_window_h)
    d_lat = radius / METRES_PER_DEGREE
    d_lon = radius / (METRES_PER_DEGREE * max(math.cos(math.radians(case.lat)), 1e-6))
    candidates = repository.duplicate_candidates(
        session,
        category=case.category,
        exclude_id=case.id,
        since=case.reported_at - window,
        until=case.reported_at + window,
        lon_range=(case.lon - d_lon, case.lon + d_lon),
        lat_range=(case.lat - d_lat, case.lat + d_lat),
        scopes=_scopes(actor),
    )
    found = [
        DuplicateSuggestion(other, distance_m(case.lon, case.lat, other.lon, other.lat))
        for other in candidates
    ]
    return sorted(
        (item for item in found if item.distance_m <= radius),
        key=lambda item: (item.distance_m, item.case.id),
    )


# ============================================================================ overdue


def overdue_cases(session: Session, now: datetime, *, limit: int | None = None) -> list[Case]:
    """Cases still with their department (dispatched or handling) past their deadline."""
    return repository.overdue(session, now=now, unescalated=False, limit=limit)


def escalate_overdue(
    session: Session,
    now: datetime,
    *,
    actor: Actor | None = None,
    limit: int | None = None,
) -> int:
    """Escalate each overdue case once (a transition ``escalate`` and an event); returns how
    many were escalated. Call it periodically (the background worker); a batch is at most
    ``limit`` cases (``ESCALATION_BATCH`` by default), so call again while it returns that."""
    escalator = actor or Actor(name="escalation", role=SYSTEM_ROLE)
    escalated = 0
    batch = limit if limit is not None else ESCALATION_BATCH
    for case in repository.overdue(session, now=now, unescalated=True, limit=batch):
        _apply(session, escalator, case, TransitionCreate(action=Action.ESCALATE), now)
        escalated += 1
    return escalated


# ============================================================================ reads


def case_read(
    session: Session, case: Case, *, now: datetime | None = None, refs: dict[int, str] | None = None
) -> CaseRead:
    """The API shape of a case (no reporter contact)."""
    return CaseRead(**_read_fields(session, case, _now(now), refs))


def _read_fields(
    session: Session, case: Case, now: datetime, refs: dict[int, str] | None
) -> dict[str, Any]:
    category = load_catalogue().get(case.category)
    duplicate_ref: str | None = None
    if case.duplicate_of is not None:
        if refs is None:
            refs = repository.refs_by_ids(session, [case.duplicate_of])
        duplicate_ref = refs.get(case.duplicate_of)
    return {
        "id": case.ref,
        "category": case.category,
        "category_name": category.name if category else case.category,
        "kind": case.kind,
        "priority": case.priority,
        "state": case.state,
        "description": case.description,
        "lat": case.lat,
        "lon": case.lon,
        "address": case.address,
        "grid_code": case.grid_code,
        "community_code": case.community_code,
        "street_code": case.street_code,
        "district_code": case.district_code,
        "source": case.source,
        "department": case.department,
        "reported_at": case.reported_at,
        "registered_at": case.registered_at,
        "dispatched_at": case.dispatched_at,
        "deadline_at": case.deadline_at,
        "accepted_at": case.accepted_at,
        "handled_at": case.handled_at,
        "closed_at": case.closed_at,
        "evaluated_at": case.evaluated_at,
        "escalated_at": case.escalated_at,
        "overdue": is_overdue(case, now),
        "rework_count": case.rework_count,
        "duplicate_of": duplicate_ref,
        "me_too_count": case.me_too_count,
        "satisfaction": case.satisfaction,
        "updated_at": case.updated_at,
    }


def case_detail(
    session: Session, actor: Actor, *, case_ref: str, now: datetime | None = None
) -> CaseDetail:
    """A case with its history, if the actor's scope covers it."""
    case = get_case(session, actor, case_ref=case_ref)
    return detail_of(session, case, now=now)


def detail_of(session: Session, case: Case, *, now: datetime | None = None) -> CaseDetail:
    """The API shape of a case with its history (the caller has checked the scope)."""
    transitions = [
        TransitionRead(
            action=row.action,
            from_state=row.from_state,
            to_state=row.to_state,
            actor_name=row.actor_name,
            actor_role=row.actor_role,
            actor_department=row.actor_department,
            at=row.at,
            note=row.note,
            data=row.data or {},
        )
        for row in repository.transitions_of(session, case.id)
    ]
    from citygrid.cases.intake import photo_reads

    return CaseDetail(
        **_read_fields(session, case, _now(now), None),
        transitions=transitions,
        photos=photo_reads(session, case),
    )


def _code_prefix(code: str | None) -> str | None:
    if code is None:
        return None
    if not (code.isascii() and code.isdigit() and len(code) in (6, 9, 12, 15)):
        raise ValidationFailed.one("grid", _("a territorial code has 6, 9, 12 or 15 digits"))
    return code


def list_cases(
    session: Session,
    actor: Actor,
    *,
    state: CaseState | None = None,
    grid: str | None = None,
    department: str | None = None,
    overdue: bool | None = None,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> CaseList:
    """Cases in the actor's scope, newest first, filtered by state, territorial code prefix
    (``grid``: a district, street, community or grid code), department, overdue."""
    prefix = _code_prefix(grid)
    if department is not None:
        _check_department(department)
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise ValidationFailed.one("limit", _("between 1 and 200"))
    if offset < 0:
        raise ValidationFailed.one("offset", _("must not be negative"))
    moment = _now(now)
    rows = repository.list_cases(
        session,
        scopes=_scopes(actor),
        state=state,
        code_prefix=prefix,
        department=department,
        overdue_at=moment if overdue else None,
        not_overdue_at=moment if overdue is False else None,
        limit=limit + 1,
        offset=offset,
    )
    page = rows[:limit]
    refs = repository.refs_by_ids(
        session, [row.duplicate_of for row in page if row.duplicate_of is not None]
    )
    return CaseList(
        items=[case_read(session, row, now=moment, refs=refs) for row in page],
        next_offset=offset + limit if len(rows) > limit else None,
    )


def catalogue_read() -> CategoryList:
    """The catalogue in the API's shape, names and criteria in the current language."""
    catalogue = load_catalogue()
    return CategoryList(
        version=catalogue.version,
        items=[
            CategoryRead(
                code=item.code,
                kind=item.kind,
                major_code=item.major_code,
                major_name=localised(item.major_name_zh, item.major_name_en),
                minor_code=item.minor_code,
                slug=item.slug,
                name=item.name,
                name_zh=item.name_zh,
                name_en=item.name_en,
                department=item.department,
                register_criterion=localised(item.register_zh, item.register_en),
                close_criterion=localised(item.close_zh, item.close_en),
                deadlines={
                    priority: DeadlineRead(amount=duration.amount, unit=duration.unit)
                    for priority, duration in item.deadlines.items()
                },
                duplicate_radius_m=item.duplicate_radius_m,
                duplicate_window_h=item.duplicate_window_h,
            )
            for item in catalogue
        ],
    )


# ============================================================================ work lists

WORK_LIST_LIMIT = 500


def open_cases(session: Session, actor: Actor, *, limit: int = WORK_LIST_LIMIT) -> list[Case]:
    """Open cases in the actor's territory, newest first (the command centre)."""
    return repository.open_cases(session, scopes=_scopes(actor), limit=limit)


def department_inbox(session: Session, actor: Actor, *, limit: int = WORK_LIST_LIMIT) -> list[Case]:
    """The actor's department's dispatched and handling cases, soonest deadline first
    (department officers only)."""
    if actor.role != Role.DEPARTMENT_OFFICER.value or not actor.department:
        raise Forbidden(_("Only department officers have an inbox."))
    return repository.department_queue(
        session, department=actor.department, scopes=_scopes(actor), limit=limit
    )


def own_grids(actor: Actor) -> list[str]:
    """The grids a grid worker looks after (the 15-digit codes among her scopes)."""
    return [code for code in actor.scopes if len(code) == 15 and code.isdigit()]


def awaiting_verification(
    session: Session, actor: Actor, *, limit: int = WORK_LIST_LIMIT
) -> list[Case]:
    """Handled cases in the grid worker's own grids, waiting for her check on site."""
    if actor.role != Role.GRID_WORKER.value:
        raise Forbidden(_("Only grid workers verify cases on site."))
    return repository.handled_in_grids(session, grid_codes=own_grids(actor), limit=limit)


# ============================================================================ overrides


def list_category_overrides(session: Session, actor: Actor) -> list[CategoryOverride]:
    """Every override of the catalogue, city-wide and per district (administrators)."""
    return catalogue_admin.list_overrides(session, actor)


def set_category_override(
    session: Session, actor: Actor, *, data: CategoryOverrideSet
) -> CategoryOverride:
    """Override a category for a district or the city (administrators)."""
    return catalogue_admin.set_override(
        session, actor, category_code=data.category, district_code=data.district_code, data=data
    )


def delete_category_override(
    session: Session, actor: Actor, *, district_code: str, category: str
) -> None:
    """Return a district (or the city) to the values below it for a category
    (administrators)."""
    catalogue_admin.remove_override(
        session, actor, category_code=category, district_code=district_code
    )
