"""Intake pages: staff file a case (``/cases/new``: grid worker on patrol, hotline entry by
any staff who may file) and residents report without an account (``/report``).

Both work without JavaScript (latitude and longitude are plain fields, photos a plain file
input); ``static/js/intake.js`` adds the device's position, a map to tap, and previews.

- ``/cases/new`` is a session page: the layout's CSRF check covers its POST. After a filed
  case it redirects (303) to the case page ``/cases/{ref}``.
- ``/report`` has no session, so its form carries a signed, dated double-submit token (a
  cookie and a hidden field with the same value, like the sign-in form); each address may
  file ``public_report_limit`` reports per ``public_report_window_minutes``. After a filed
  report it shows the tracking reference.

Both forms carry an idempotency key rendered with the form: a second submit of the same
form returns the first case, with no second photo set.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citygrid.access import throttle
from citygrid.access.deps import CurrentActor, client_address, is_https, request_settings
from citygrid.access.tokens import sign, signature_matches
from citygrid.cases import intake
from citygrid.cases.api import WriteSessionDep
from citygrid.cases.catalogue import load_catalogue
from citygrid.cases.forms import Submission, read_submission
from citygrid.cases.models import CaseKind, CaseSource, Priority
from citygrid.cases.schemas import DESCRIPTION_MAX
from citygrid.kit.errors import CitygridError, Forbidden, ValidationFailed
from citygrid.kit.i18n import _, localised
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings
from citygrid.kit.web import render, templates
from citygrid.territory.api import LocatorDep

router = APIRouter(include_in_schema=False)

# The layout's "Report a problem" link goes to the staff form for those who may file.
templates.env.globals["may_file_cases"] = intake.may_file

REPORT_COOKIE = "citygrid_report_csrf"
REPORT_TOKEN_FIELD = "report_token"  # noqa: S105 - a form field name
REPORT_TOKEN_MAX_AGE = 2 * 60 * 60
REPORT_COOKIE_PATH = "/report"
_REPORT_PURPOSE = "report-csrf"


# ============================================================================ the form


@dataclass
class FormState:
    """What the form shows: the values sent back, and the reasons by field."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None


def category_groups() -> list[dict[str, Any]]:
    """The catalogue for the picker: components then events, by major class."""
    groups: dict[tuple[CaseKind, str], dict[str, Any]] = {}
    kind_names = {CaseKind.COMPONENT: _("Components"), CaseKind.EVENT: _("Events")}
    for item in load_catalogue():
        key = (item.kind, item.major_code)
        if key not in groups:
            groups[key] = {
                "label": f"{kind_names[item.kind]} · "
                + localised(item.major_name_zh, item.major_name_en),
                "items": [],
            }
        groups[key]["items"].append({"code": item.code, "name": item.name})
    return [groups[key] for key in sorted(groups, key=lambda k: (k[0] != CaseKind.COMPONENT, k))]


def priority_choices() -> list[tuple[str, str]]:
    """The task levels, most urgent first."""
    labels = {
        Priority.URGENT: _("Urgent"),
        Priority.HIGH: _("High"),
        Priority.NORMAL: _("Normal"),
    }
    return [(priority.value, labels[priority]) for priority in Priority]


def _errors_of(error: CitygridError) -> FormState:
    state = FormState(message=error.message)
    details = error.details if isinstance(error.details, list) else []
    for item in details:
        if isinstance(item, Mapping) and "field" in item:
            name = str(item["field"]).split("[", 1)[0].split(".", 1)[0]
            if name == "reporter_contact":
                name = "reporter_phone" if "phone" in str(item["field"]) else "reporter_name"
            state.errors.setdefault(name, str(item.get("reason", "")))
    if state.errors:
        state.message = _("Check the fields marked below.")
    return state


def _values(submission: Submission | None) -> dict[str, Any]:
    if submission is None:
        return {}
    values = dict(submission.fields)
    contact = values.pop("reporter_contact", None) or {}
    values["reporter_name"] = contact.get("name", "")
    values["reporter_phone"] = contact.get("phone", "")
    return values


@dataclass
class PageSubmission:
    """A page's submission, or why it could not be read (shown on the form)."""

    submission: Submission | None
    error: CitygridError | None


async def page_submission(request: Request) -> PageSubmission:
    """Read the form and check its photos before the write lock; keep a refusal to show it
    on the form instead of an error page."""
    try:
        return PageSubmission(await read_submission(request), None)
    except CitygridError as error:
        return PageSubmission(None, error)


PageSubmissionDep = Annotated[PageSubmission, Depends(page_submission)]


def _map_context(request: Request, scopes: tuple[str, ...]) -> dict[str, str]:
    grid = next((code for code in scopes if len(code) == 15), "")
    district = next((code[:6] for code in scopes if len(code) >= 6), "")
    settings = request_settings(request)
    return {"grid": grid, "district": district, "tile_url": settings.map_tile_url or ""}


def _labels() -> dict[str, str]:
    return {
        "locating": _("Finding your position…"),
        "located": _("Position set from the device."),
        "denied": _("The device did not give a position. Tap the map or type it."),
        "picked": _("Position set from the map."),
        "photos": _("Selected photos"),
    }


def _render_form(
    request: Request,
    template: str,
    *,
    state: FormState,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    return render(
        request,
        template,
        status_code=status_code,
        state=state,
        groups=category_groups(),
        priorities=priority_choices(),
        description_max=DESCRIPTION_MAX,
        idempotency_key=state.values.get("idempotency_key") or uuid.uuid4().hex,
        intake_labels=_labels(),
        **context,
    )


# ============================================================================ staff


def _require_filer(actor: Any) -> None:
    if not intake.may_file(actor):
        raise Forbidden(_("Your role may not file cases."))


def _hotline(actor: Any, via: str | None) -> bool:
    return via == "hotline" and not intake.is_grid_worker(actor)


@router.get("/cases/new", response_class=HTMLResponse)
def new_case_page(
    request: Request,
    actor: CurrentActor,
    via: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    """The intake form for staff (``?via=hotline`` adds the caller's name and phone)."""
    _require_filer(actor)
    return _render_form(
        request,
        "cases/intake_new.html",
        state=FormState(values={"priority": Priority.NORMAL.value}),
        hotline=_hotline(actor, via),
        map=_map_context(request, actor.scopes),
    )


@router.post("/cases/new", response_class=HTMLResponse)
def new_case_submit(
    request: Request,
    actor: CurrentActor,
    form: PageSubmissionDep,
    session: WriteSessionDep,
    locator: LocatorDep,
) -> Response:
    """File the case, then go to its page; show the form again with the reasons if not."""
    _require_filer(actor)
    submission = form.submission
    via = submission.extra.get("via") if submission else None
    hotline = _hotline(actor, via)
    context = {"hotline": hotline, "map": _map_context(request, actor.scopes)}
    error = form.error
    if submission is not None and error is None:
        try:
            with session.begin_nested():
                filed = intake.file_case(
                    session,
                    actor,
                    fields=submission.fields,
                    photos=submission.photos,
                    locator=locator,
                    store=intake.photo_store(request_settings(request)),
                    idempotency_key=submission.extra.get("idempotency_key") or None,
                    source=CaseSource.HOTLINE if hotline else None,
                )
        except ValidationFailed as refused:
            error = refused
        else:
            return RedirectResponse(f"/cases/{filed.case.ref}", status_code=303)
    assert error is not None  # noqa: S101 - either filed or refused
    state = _errors_of(error)
    state.values = _values(submission)
    if submission is not None:
        state.values["idempotency_key"] = submission.extra.get("idempotency_key", "")
    return _render_form(
        request, "cases/intake_new.html", state=state, status_code=error.status_code, **context
    )


# ============================================================================ public


def _new_report_token(settings: Settings) -> str:
    body = f"{secrets.token_urlsafe(18)}.{int(time.time())}"
    return f"{body}.{sign(settings.require_secret_key(), _REPORT_PURPOSE, body)}"


def _report_token_valid(settings: Settings, token: str | None) -> bool:
    if not token or len(token) > 200:
        return False
    body, _sep, signature = token.rpartition(".")
    if not body or not signature_matches(
        settings.require_secret_key(), _REPORT_PURPOSE, body, signature
    ):
        return False
    try:
        issued = int(body.rsplit(".", 1)[1])
    except (IndexError, ValueError):
        return False
    return 0 <= time.time() - issued < REPORT_TOKEN_MAX_AGE


class _RateLimited(Exception):
    """The address has filed its quota of reports for the window."""

    def __init__(self, seconds: int) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def _render_report(
    request: Request,
    *,
    state: FormState,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    settings = request_settings(request)
    token = request.cookies.get(REPORT_COOKIE)
    if not _report_token_valid(settings, token):
        token = _new_report_token(settings)
    response = _render_form(
        request,
        "cases/intake_report.html",
        state=state,
        status_code=status_code,
        report_token=token,
        map=_map_context(request, ()),
    )
    response.set_cookie(
        REPORT_COOKIE,
        token or "",
        max_age=REPORT_TOKEN_MAX_AGE,
        path=REPORT_COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=is_https(request, settings),
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


@router.get("/report", response_class=HTMLResponse)
def report_page(request: Request) -> HTMLResponse:
    """The public report form: photo, place, category, optional contact."""
    return _render_report(request, state=FormState(values={"priority": Priority.NORMAL.value}))


@router.post("/report", response_class=HTMLResponse)
def report_submit(
    request: Request,
    form: PageSubmissionDep,
    session: WriteSessionDep,
    locator: LocatorDep,
) -> Response:
    """File a resident's report and show its tracking reference."""
    settings = request_settings(request)
    submission = form.submission
    sent = submission.extra.get(REPORT_TOKEN_FIELD, "") if submission else ""
    cookie = request.cookies.get(REPORT_COOKIE) or ""
    if not (
        sent
        and secrets.compare_digest(sent.encode(), cookie.encode())
        and _report_token_valid(settings, sent)
    ):
        state = FormState(
            values=_values(submission),
            message=_("The form had expired or did not come from this site. Send it again."),
        )
        return _render_report(request, state=state, status_code=403)
    error = form.error
    if submission is not None and error is None:
        key = submission.extra.get("idempotency_key") or None
        # The form's key names its resident: a second submit of this form finds its case.
        reporter_key = hashlib.sha256((key or secrets.token_hex(16)).encode()).hexdigest()[:24]
        actor = intake.citizen_actor(
            reporter_key, request_id=getattr(request.state, "request_id", None)
        )
        address = client_address(request, settings)
        try:
            with session.begin_nested():
                # Counted with the case: a refused report does not use up the address's quota.
                wait = throttle.take_slot(
                    session,
                    key=f"report:{address or 'unknown'}",
                    limit=settings.public_report_limit,
                    window=timedelta(minutes=settings.public_report_window_minutes),
                    now=utcnow(),
                )
                if wait is not None:
                    raise _RateLimited(wait)
                filed = intake.file_case(
                    session,
                    actor,
                    fields=submission.fields,
                    photos=submission.photos,
                    locator=locator,
                    store=intake.photo_store(settings),
                    idempotency_key=key,
                    source=CaseSource.CITIZEN,
                )
        except _RateLimited as limited:
            state = FormState(
                values=_values(submission),
                message=_(
                    "Too many reports from this connection. Wait {minutes} minutes and try again."
                ).format(minutes=max(1, -(-limited.seconds // 60))),
            )
            return _render_report(
                request,
                state=state,
                status_code=429,
                headers={"Retry-After": str(limited.seconds)},
            )
        except ValidationFailed as refused:
            error = refused
        else:
            return render(
                request,
                "cases/intake_report_done.html",
                status_code=201 if filed.created else 200,
                reference=filed.case.ref,
            )
    assert error is not None  # noqa: S101 - either filed or refused
    state = _errors_of(error)
    state.values = _values(submission)
    return _render_report(request, state=state, status_code=error.status_code)
