"""The rules of the Open311 door (GeoReport v2): who may file (API keys), what a request must
carry, how a case looks to an Open311 client.

- A service is a minor class of the catalogue; ``service_code`` is the category code.
- ``POST requests`` files a case through ``citygrid.cases.service.create_case`` (source
  ``open311``) and keeps the Open311 side (token, attributes, media link, device, e-mail) in
  ``open311_requests``. The reporter's name, phone and e-mail are personal data: stored, never
  returned, never in an error message.
- A case is ``open`` until it is closed, evaluated or rejected; ``status_notes`` says where
  it stands in the loop, in the caller's language.
- ``GET requests`` lists cases reported in a window of at most 90 days (the last 90 days by
  default), at most 1,000, newest first.

Parameters arrive as the strings the client sent; every refusal is a ``BadRequest`` (400),
``Forbidden`` (403) or ``NotFound`` (404) naming the parameter and the reason, never the
value. Services only flush.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy.orm import Session

from citygrid.cases import service as cases
from citygrid.cases.catalogue import Category
from citygrid.cases.models import DEADLINE_STATES, Case, CaseSource, CaseState, Priority
from citygrid.cases.open311 import repository
from citygrid.cases.open311.definitions import (
    LIST_TYPES,
    PRIORITY_ATTRIBUTE,
    Attribute,
    Datatype,
    attributes_of,
    keywords,
    service_category,
)
from citygrid.cases.open311.formats import w3c
from citygrid.cases.open311.models import Open311Key
from citygrid.cases.schemas import DESCRIPTION_MAX, CaseCreate, ReporterContact
from citygrid.exchange.catalogue import default_catalogue
from citygrid.kit.actor import Actor
from citygrid.kit.clock import CHINA_STANDARD_TIME
from citygrid.kit.errors import BadRequest, CitygridError, Forbidden, NotFound, ValidationFailed
from citygrid.kit.i18n import _, localised, ngettext_
from citygrid.kit.models import utcnow
from citygrid.kit.settings import DEMO_SECRET
from citygrid.registry import service as registry
from citygrid.registry.schemas import DEPARTMENT_SLUGS
from citygrid.territory.locator import Locator

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
#: When this API last changed (discovery's ``changeset``).
CHANGESET = datetime(2026, 12, 7, tzinfo=CHINA_STANDARD_TIME)

#: In demo mode this key files requests as the demo client.
DEMO_KEY = DEMO_SECRET
KEY_PREFIX = "o311_"
_KEY_BYTES = 32
_PREFIX_LENGTH = len(KEY_PREFIX) + 8
_TOKEN_BYTES = 12

LIST_LIMIT = 1000
MAX_SPAN = timedelta(days=90)
MEDIA_URL_MAX = 1000
CLIENT_ID_MAX = 64
EMAIL_MAX = 254
NAME_MAX = 50
ADDRESS_MAX = 200
KEY_NAME_MAX = 100
TEXT_ATTRIBUTE_MAX = {Datatype.STRING: 200, Datatype.TEXT: 2000, Datatype.DATETIME: 40}

#: Sources whose description the reporter wrote for the public. Staff write the others
#: (a call to the hotline, a grid worker's note) for the departments: they may name residents,
#: so Open311 does not publish them.
PUBLIC_SOURCES = frozenset({CaseSource.OPEN311, CaseSource.CITIZEN})

CLOSED_STATES = frozenset({CaseState.CLOSED, CaseState.EVALUATED, CaseState.REJECTED})
OPEN_STATUS_STATES = tuple(state for state in CaseState if state not in CLOSED_STATES)
CLOSED_STATUS_STATES = tuple(state for state in CaseState if state in CLOSED_STATES)

_ATTRIBUTE_KEY = re.compile(r"^attribute\[([^\[\]]*)\](\[\])?$")
_ATTRIBUTE_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PRINTABLE_ID = re.compile(r"^[\x21-\x7e]+$")
_CJK = re.compile(r"[\u3400-\u9fff]")

# Departments that are not members of the data exchange (which names the others).
_OTHER_DEPARTMENTS = {
    "urban-management": ("城市管理和综合执法局", "Urban Management and Law Enforcement Bureau"),
    "landscaping": ("林业和园林局", "Forestry and Landscaping Bureau"),
    "power-supply": ("供电局", "Power Supply Bureau"),
    "transport": ("交通运输局", "Transport Bureau"),
}


# ============================================================================ keys


@dataclass(frozen=True, slots=True)
class Open311Client:
    """The application behind a request: its actor (a client of the system role, so that it
    may file anywhere in the city) and its key's row id (None for the demo key)."""

    actor: Actor
    key_id: int | None


def _digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def authenticate(
    session: Session,
    *,
    api_key: str | None,
    demo_mode: bool,
    request_id: str | None = None,
    client_address: str | None = None,
) -> Open311Client:
    """The client an api_key belongs to; 403 when it is missing, unknown or revoked."""
    if not api_key:
        raise Forbidden(_("api_key: required to file a request"))
    department: str | None = None
    key_id: int | None = None
    if api_key == DEMO_KEY and demo_mode:
        name = "open311:demo"
    else:
        row = repository.key_by_hash(session, _digest(api_key))
        if row is None or row.revoked_at is not None:
            raise Forbidden(_("api_key: not valid, or revoked"))
        name, department, key_id = f"open311:{row.prefix}", row.department, row.id
    actor = Actor(
        name=name,
        role=cases.OPEN311_ROLE,
        department=department,
        kind="client",
        request_id=request_id,
        client_address=client_address,
    )
    return Open311Client(actor, key_id)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: its row, and its text (shown once, stored only as a hash)."""

    row: Open311Key
    api_key: str


def create_key(session: Session, actor: Actor, *, name: str, department: str) -> IssuedKey:
    """Issue a key to a client application owned by a department."""
    name = name.strip()
    if not 1 <= len(name) <= KEY_NAME_MAX:
        raise ValidationFailed.one("name", _("1 to 100 characters"))
    if department not in DEPARTMENT_SLUGS:
        raise ValidationFailed.one("department", _("unknown department"))
    api_key = KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)
    row = Open311Key(
        prefix=api_key[:_PREFIX_LENGTH],
        key_hash=_digest(api_key),
        name=name,
        department=department,
        created_by=actor.name,
        created_at=utcnow(),
    )
    repository.add(session, row)
    return IssuedKey(row, api_key)


def revoke_key(session: Session, actor: Actor, *, prefix: str) -> Open311Key:
    """Revoke a key by its prefix (from then on it answers 403); revoking twice is a no-op."""
    row = repository.key_by_prefix(session, prefix)
    if row is None:
        raise NotFound(_("No Open311 key has this prefix."))
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def list_keys(session: Session) -> list[Open311Key]:
    """Every key, oldest first (prefixes only: the keys themselves are not stored)."""
    return repository.keys(session)


# ============================================================================ services


def agency_name(department: str) -> str:
    """A department's name in the current language (the slug if it has none)."""
    for member in default_catalogue().members:
        if member.slug == department:
            return localised(member.name_zh, member.name_en)
    names = _OTHER_DEPARTMENTS.get(department)
    return localised(*names) if names else department


def discovery_document(endpoint_url: str) -> dict[str, Any]:
    """The service discovery document of this endpoint."""
    changeset = w3c(CHANGESET)
    return {
        "changeset": changeset,
        "contact": _("The district's digital urban management command centre"),
        "key_service": _(
            "Ask the command centre for an API key (administrators issue them with "
            "`citygrid open311 keys create`); in the demo, the key citygrid-demo works."
        ),
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": endpoint_url,
                "changeset": changeset,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }


def services_document() -> list[dict[str, Any]]:
    """Every service (minor class of the catalogue), in code order."""
    return [
        {
            "service_code": category.code,
            "service_name": category.name,
            "description": localised(category.register_zh, category.register_en),
            "metadata": bool(attributes_of(category)),
            "type": "realtime",
            "keywords": keywords(category),
            "group": localised(category.major_name_zh, category.major_name_en),
        }
        for category in cases.categories()
    ]


def _category(service_code: str) -> Category:
    category = service_category(service_code)
    if category is None:
        raise NotFound(_("service_code: no service has this code"))
    return category


_DATATYPE_DESCRIPTIONS = {
    Datatype.NUMBER: ("数字，例如 3", "A number, e.g. 3"),
    Datatype.DATETIME: (
        "W3C 日期时间，例如 2026-12-01T08:30:00+08:00",
        "A W3C datetime, e.g. 2026-12-01T08:30:00+08:00",
    ),
    Datatype.MULTIVALUELIST: (
        "可多选：attribute[代码][]=值，每个值一次",
        "Several values allowed: attribute[code][]=value, once per value",
    ),
}


def _attribute_document(attribute: Attribute, order: int) -> dict[str, Any]:
    description = _DATATYPE_DESCRIPTIONS.get(attribute.datatype)
    document: dict[str, Any] = {
        "variable": True,
        "code": attribute.code,
        "datatype": attribute.datatype.value,
        "required": attribute.required,
        "datatype_description": localised(*description) if description else None,
        "order": order,
        "description": attribute.description,
    }
    if attribute.datatype in LIST_TYPES:
        document["values"] = [{"key": value.key, "name": value.name} for value in attribute.values]
    return document


def service_definition_document(service_code: str) -> dict[str, Any]:
    """A service's definition: its attributes in order (404 for an unknown code)."""
    category = _category(service_code)
    return {
        "service_code": category.code,
        "attributes": [
            _attribute_document(attribute, order)
            for order, attribute in enumerate(attributes_of(category), start=1)
        ],
    }


def service_notice(category: Category, priority: Priority) -> str:
    """What the reporter may expect: the department's time once the case is dispatched."""
    deadline = category.deadline(priority)
    if deadline.unit == "h":
        return ngettext_(
            "If the report meets the registration criterion, the responsible department has "
            "%(count)s working hour to fix it once it is dispatched.",
            "If the report meets the registration criterion, the responsible department has "
            "%(count)s working hours to fix it once it is dispatched.",
            deadline.amount,
        ) % {"count": deadline.amount}
    return ngettext_(
        "If the report meets the registration criterion, the responsible department has "
        "%(count)s working day to fix it once it is dispatched.",
        "If the report meets the registration criterion, the responsible department has "
        "%(count)s working days to fix it once it is dispatched.",
        deadline.amount,
    ) % {"count": deadline.amount}


# ============================================================================ filing


@dataclass(frozen=True, slots=True)
class Filed:
    """The outcome of ``POST requests``: the case, its token, and the notice."""

    case: Case
    token: str
    service_notice: str
    account_id: str | None
    created: bool


Form = Mapping[str, Sequence[str]]


def _one(form: Form, name: str) -> str | None:
    """The parameter's single value, stripped; None when absent or empty."""
    values = [value.strip() for value in form.get(name, ()) if value.strip()]
    if len(values) > 1:
        raise BadRequest(_("%(field)s: give it once") % {"field": name})
    return values[0] if values else None


def _bounded(form: Form, name: str, limit: int) -> str | None:
    value = _one(form, name)
    if value is not None and len(value) > limit:
        raise BadRequest(
            _("%(field)s: at most %(limit)s characters") % {"field": name, "limit": limit}
        )
    return value


def _coordinate(form: Form, name: str, bound: float) -> float | None:
    text = _one(form, name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not -bound <= value <= bound:  # also refuses nan and inf
        raise BadRequest(
            _("%(field)s: a number of degrees between -%(bound)s and %(bound)s (WGS 84)")
            % {"field": name, "bound": int(bound)}
        )
    return value


@dataclass(frozen=True, slots=True)
class _Place:
    lat: float
    lon: float
    address: str | None


def _place(session: Session, form: Form) -> _Place:
    lat = _coordinate(form, "lat", 90)
    lon = _coordinate(form, "long", 180)
    address = _bounded(form, "address_string", ADDRESS_MAX)
    if lat is not None and lon is not None:
        return _Place(lat, lon, address)
    if lat is not None or lon is not None:
        raise BadRequest(_("lat, long: give both, or neither and an address_string"))
    if address is not None:
        points = registry.geocode_address(session, address=address)
        if not points:
            raise BadRequest(
                _(
                    "address_string: no building in the city's registry has this address; "
                    "send lat and long instead"
                )
            )
        if len({(point.lon, point.lat) for point in points}) > 1:
            raise BadRequest(
                _("address_string: several buildings have this address; send lat and long")
            )
        return _Place(points[0].lat, points[0].lon, points[0].address)
    if _one(form, "address_id") is not None:
        raise BadRequest(_("address_id: not supported here; send lat and long, or address_string"))
    raise BadRequest(_("lat, long: required (or an address_string)"))


def _attribute_values(form: Form) -> dict[str, list[str]]:
    answers: dict[str, list[str]] = {}
    for key, values in form.items():
        match = _ATTRIBUTE_KEY.match(key)
        if match is None:
            continue
        kept = [value.strip() for value in values if value.strip()]
        if kept:
            answers.setdefault(match.group(1), []).extend(kept)
    return answers


def _attribute_answer(attribute: Attribute, values: list[str]) -> Any:
    field = f"attribute[{attribute.code}]"
    if attribute.datatype is Datatype.MULTIVALUELIST:
        unknown = [value for value in values if value not in attribute.accepted_keys()]
        if unknown:
            raise BadRequest(_("%(field)s: not one of the listed keys") % {"field": field})
        return sorted(set(values), key=values.index)
    if len(values) > 1:
        raise BadRequest(_("%(field)s: give it once") % {"field": field})
    value = values[0]
    if attribute.datatype is Datatype.SINGLEVALUELIST:
        if value not in attribute.accepted_keys():
            raise BadRequest(_("%(field)s: not one of the listed keys") % {"field": field})
        return value
    if attribute.datatype is Datatype.NUMBER:
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if number != number or number in (float("inf"), float("-inf")):
            raise BadRequest(_("%(field)s: not a number") % {"field": field})
        return int(number) if number.is_integer() else number
    limit = TEXT_ATTRIBUTE_MAX[attribute.datatype]
    if len(value) > limit:
        raise BadRequest(
            _("%(field)s: at most %(limit)s characters") % {"field": field, "limit": limit}
        )
    if attribute.datatype is Datatype.DATETIME:
        return w3c(parse_w3c(value, field))
    return value


def _attributes(category: Category, form: Form) -> dict[str, Any]:
    given = _attribute_values(form)
    known = {attribute.code: attribute for attribute in attributes_of(category)}
    unknown = sorted(set(given) - set(known))
    if unknown:
        # The code is echoed only when it looks like one: a client's free text is not.
        code = unknown[0] if _ATTRIBUTE_CODE.match(unknown[0]) else "..."
        raise BadRequest(
            _("attribute[%(code)s]: this service has no such attribute") % {"code": code}
        )
    answers: dict[str, Any] = {}
    for code, attribute in known.items():
        if code in given:
            answers[code] = _attribute_answer(attribute, given[code])
        elif attribute.required:
            raise BadRequest(_("attribute[%(code)s]: required") % {"code": code})
    return answers


def _reporter_name(form: Form) -> str | None:
    first = _bounded(form, "first_name", NAME_MAX)
    last = _bounded(form, "last_name", NAME_MAX)
    if first and last:
        # Chinese names put the family name first, without a space.
        joined = last + first if _CJK.search(first + last) else f"{first} {last}"
    else:
        joined = first or last or ""
    if len(joined) > NAME_MAX:
        raise BadRequest(_("first_name, last_name: at most 50 characters together"))
    return joined or None


def _contact(form: Form) -> ReporterContact | None:
    name = _reporter_name(form)
    phone = _bounded(form, "phone", 20)
    if name is None and phone is None:
        return None
    try:
        return ReporterContact(name=name, phone=phone)
    except ValidationError:
        # The only rule beyond the lengths checked above is the phone number's shape.
        raise BadRequest(_("phone: digits, optionally with +, spaces or dashes")) from None


def _email(form: Form) -> str | None:
    email = _bounded(form, "email", EMAIL_MAX)
    if email is not None and not _EMAIL.match(email):
        raise BadRequest(_("email: not an e-mail address"))
    return email


def _media_url(form: Form) -> str | None:
    url = _bounded(form, "media_url", MEDIA_URL_MAX)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise BadRequest(_("media_url: must be an http or https URL"))
    return url


def _client_id(form: Form, name: str) -> str | None:
    value = _bounded(form, name, CLIENT_ID_MAX)
    if value is not None and not _PRINTABLE_ID.match(value):
        raise BadRequest(_("%(field)s: printable characters without spaces") % {"field": name})
    return value


def _as_bad_request(error: CitygridError) -> BadRequest:
    """A refusal of the case service, in Open311's words (400, ``long`` for ``lon``)."""
    message = error.message
    if isinstance(error, ValidationFailed) and message.startswith("lat, lon:"):
        message = "lat, long:" + message.removeprefix("lat, lon:")
    return BadRequest(message)


def submit_request(
    session: Session,
    client: Open311Client,
    *,
    form: Form,
    locator: Locator,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Filed:
    """File a service request as a case (``POST requests``)."""
    service_code = _one(form, "service_code")
    if service_code is None:
        raise BadRequest(_("service_code: required"))
    category = service_category(service_code)
    if category is None:
        raise BadRequest(_("service_code: no service has this code"))
    answers = _attributes(category, form)
    priority = Priority(answers.get(PRIORITY_ATTRIBUTE, Priority.NORMAL.value))
    description = _one(form, "description") or category.name
    if len(description) > DESCRIPTION_MAX:
        raise BadRequest(
            _("%(field)s: at most %(limit)s characters")
            % {"field": "description", "limit": DESCRIPTION_MAX}
        )
    contact = _contact(form)
    email = _email(form)
    media_url = _media_url(form)
    device_id = _client_id(form, "device_id")
    account_id = _client_id(form, "account_id")
    place = _place(session, form)
    data = CaseCreate(
        category=category.code,
        description=description,
        priority=priority,
        lat=place.lat,
        lon=place.lon,
        address=place.address,
        reporter_contact=contact,
    )
    try:
        intake = cases.create_case(
            session,
            client.actor,
            data=data,
            locator=locator,
            idempotency_key=idempotency_key,
            source=CaseSource.OPEN311,
            now=now,
        )
    except (ValidationFailed, BadRequest) as error:
        raise _as_bad_request(error) from None
    case = intake.case
    if intake.created:
        token, stored_account_id = secrets.token_urlsafe(_TOKEN_BYTES), account_id
        repository.insert_request(
            session,
            {
                "case_id": case.id,
                "token": token,
                "key_id": client.key_id,
                "attributes": answers,
                "media_url": media_url,
                "device_id": device_id,
                "account_id": account_id,
                "reporter_email": email,
                "created_at": case.reported_at,
            },
        )
    else:
        earlier = repository.request_of_case(session, case.id)
        if earlier is None:  # pragma: no cover - a case filed here always has its side row
            raise NotFound(_("No request has this id."))
        token, stored_account_id = earlier.token, earlier.account_id
    return Filed(
        case=case,
        token=token,
        service_notice=service_notice(category, case.priority),
        account_id=stored_account_id,
        created=intake.created,
    )


def filed_document(filed: Filed) -> list[dict[str, Any]]:
    """The answer to ``POST requests``."""
    return [
        {
            "service_request_id": filed.case.ref,
            "token": filed.token,
            "service_notice": filed.service_notice,
            "account_id": filed.account_id,
        }
    ]


# ============================================================================ reading


def token_document(session: Session, *, token: str) -> list[dict[str, Any]]:
    """``GET tokens/{token}``: the service_request_id the token became (404 if none)."""
    ref = repository.case_ref_by_token(session, token) if len(token) <= 64 else None
    if ref is None:
        raise NotFound(_("token: no request has this token"))
    return [{"service_request_id": ref, "token": token}]


class _Documents:
    """Turns listed cases into GeoReport requests; the texts that depend only on the state,
    department, category and priority are translated once per answer, not once per row."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._agencies: dict[str, str] = {}
        self._notices: dict[tuple[str, Priority], str | None] = {}
        self._names: dict[str, str] = {}
        self._notes: dict[tuple[CaseState, str, bool, bool], str] = {}

    def agency(self, department: str) -> str:
        if department not in self._agencies:
            self._agencies[department] = agency_name(department)
        return self._agencies[department]

    def notice(self, code: str, priority: Priority) -> str | None:
        key = (code, priority)
        if key not in self._notices:
            category = service_category(code)
            self._notices[key] = service_notice(category, priority) if category else None
        return self._notices[key]

    def name(self, code: str) -> str:
        if code not in self._names:
            category = service_category(code)
            self._names[code] = category.name if category else code
        return self._names[code]

    def notes(self, row: Any) -> str:
        overdue = (
            row.state in DEADLINE_STATES
            and row.deadline_at is not None
            and row.deadline_at < self.now
        )
        key = (row.state, row.department, overdue, row.duplicate_of is not None)
        if key not in self._notes:
            self._notes[key] = _status_notes(*key, agency=self.agency(row.department))
        return self._notes[key]

    def request(self, row: Any) -> dict[str, Any]:
        """A listed case (``repository.REQUEST_COLUMNS``) as a GeoReport service request."""
        return {
            "service_request_id": row.ref,
            "status": "closed" if row.state in CLOSED_STATES else "open",
            "status_notes": self.notes(row),
            "service_name": self.name(row.category),
            "service_code": row.category,
            "description": row.description if row.source in PUBLIC_SOURCES else None,
            "agency_responsible": self.agency(row.department),
            "service_notice": self.notice(row.category, row.priority),
            "requested_datetime": w3c(row.reported_at),
            "updated_datetime": w3c(row.updated_at),
            "expected_datetime": w3c(row.deadline_at),
            "address": row.address,
            "address_id": None,
            "zipcode": None,
            "lat": row.lat,
            "long": row.lon,
            "media_url": row.media_url,
        }


def _status_notes(
    state: CaseState, department: str, overdue: bool, duplicate: bool, *, agency: str
) -> str:
    """Where a case stands, for the reporter, in the current language."""
    if state is CaseState.REJECTED:
        if duplicate:
            return _("Not registered: the same problem has already been reported.")
        return _("Not registered: the report does not meet the registration criterion.")
    if overdue:
        return _("With %(agency)s, past its deadline: the command centre has been alerted.") % {
            "agency": agency
        }
    notes = {
        CaseState.REPORTED: _("Received: the command centre will check it."),
        CaseState.REGISTERED: _("Registered: waiting to be sent to the responsible department."),
        CaseState.DISPATCHED: _("Sent to %(agency)s."),
        CaseState.HANDLING: _("%(agency)s is working on it."),
        CaseState.HANDLED: _("%(agency)s reports it fixed: a grid worker will check on site."),
        CaseState.CLOSED: _("Fixed, and checked on site."),
        CaseState.EVALUATED: _("Fixed, and checked on site."),
    }
    return notes[state] % {"agency": agency}


def parse_w3c(text: str, field: str) -> datetime:
    """A W3C datetime (``2026-12-01``, ``2026-12-01T08:30:00+08:00``, ``...Z``); a time
    without an offset is the city's (UTC+8). 400 naming the field otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            _("%(field)s: not a W3C datetime such as 2026-12-01T08:30:00+08:00") % {"field": field}
        ) from None
    return moment.replace(tzinfo=CHINA_STANDARD_TIME) if moment.tzinfo is None else moment


def _window(
    start_text: str | None, end_text: str | None, now: datetime
) -> tuple[datetime, datetime]:
    start = parse_w3c(start_text, "start_date") if start_text else None
    end = parse_w3c(end_text, "end_date") if end_text else None
    if start is None and end is None:
        return now - MAX_SPAN, now
    if start is None:
        assert end is not None  # noqa: S101 - one of the two is set here
        return end - MAX_SPAN, end
    if end is None:
        return start, start + MAX_SPAN
    if end < start:
        raise BadRequest(_("end_date: before start_date"))
    if end - start > MAX_SPAN:
        raise BadRequest(_("start_date, end_date: at most 90 days apart"))
    return start, end


def _codes(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _statuses(text: str | None) -> list[CaseState] | None:
    wanted = set(_codes(text))
    if not wanted:
        return None
    if not wanted <= {"open", "closed"}:
        raise BadRequest(_("status: open, closed, or both separated by a comma"))
    states: list[CaseState] = []
    if "open" in wanted:
        states.extend(OPEN_STATUS_STATES)
    if "closed" in wanted:
        states.extend(CLOSED_STATUS_STATES)
    return states


def find_requests(
    session: Session, *, query: Mapping[str, str | None], now: datetime | None = None
) -> list[dict[str, Any]]:
    """``GET requests``: by ``service_request_id`` (a comma list; the other filters are then
    ignored), or by ``service_code`` (comma list), ``status`` (open, closed) and the window
    ``start_date`` .. ``end_date``; at most 1,000, newest first."""
    moment = now or utcnow()
    refs = _codes(query.get("service_request_id"))
    if refs:
        if len(refs) > LIST_LIMIT:
            raise BadRequest(_("service_request_id: at most 1000 ids"))
        rows = repository.cases_by_refs(session, [ref for ref in refs if len(ref) <= 24])
    else:
        codes = _codes(query.get("service_code"))
        if any(service_category(code) is None for code in codes):
            raise BadRequest(_("service_code: no service has this code"))
        states = _statuses(query.get("status"))
        start, end = _window(query.get("start_date"), query.get("end_date"), moment)
        rows = repository.cases_reported_between(
            session,
            start=start,
            end=end,
            categories=codes or None,
            states=states,
            limit=LIST_LIMIT,
        )
    documents = _Documents(moment)
    return [documents.request(row) for row in rows]


def get_request(
    session: Session, *, service_request_id: str, now: datetime | None = None
) -> list[dict[str, Any]]:
    """``GET requests/{id}``: the one request, as a list (404 if there is none)."""
    rows = (
        repository.cases_by_refs(session, [service_request_id])
        if len(service_request_id) <= 24
        else []
    )
    if not rows:
        raise NotFound(_("service_request_id: no request has this id"))
    return [_Documents(now or utcnow()).request(rows[0])]
