"""Pages of the case loop: the command centre (live map, feed, dispatch panel), the case
page, the list of cases, the department's inbox and the grid worker's verifications.

Routes stay thin: the service decides what a user may see and do. A case outside the
user's territory is "not found"; an action not allowed in the case's state is a 409 page,
one the user's role or department may not take a 403 page; every form carries the session's
CSRF token (checked for every route, see ``citygrid.access.deps``). A form posts to
``/cases/{ref}/transitions`` and comes back (303) to the page it came from, saying what was
done.

Case references are 16 URL-safe characters; the ``caseref`` path convertor matches only
those, so ``/cases/new`` and other fixed paths under ``/cases/`` stay free for other pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.convertors import Convertor, register_url_convertor

from citygrid.access import gateway
from citygrid.access.deps import CurrentActor, request_settings
from citygrid.access.models import Role
from citygrid.access.persons_api import begin_audited_read, commit_before_answering
from citygrid.cases import intake, service
from citygrid.cases.api import WriteSessionDep
from citygrid.cases.catalogue import Category, load_catalogue
from citygrid.cases.forms import FORM_TYPES, Submission, form_fields
from citygrid.cases.intake_pages import PageSubmission, page_submission
from citygrid.cases.models import OPEN_STATES, Action, Case, CaseState
from citygrid.cases.schemas import (
    CaseDetail,
    CaseRead,
    ReporterRead,
    ReporterReveal,
    TransitionCreate,
)
from citygrid.kit.actor import Actor
from citygrid.kit.clock import CHINA_STANDARD_TIME
from citygrid.kit.errors import CitygridError, Forbidden, ValidationFailed
from citygrid.kit.i18n import _, localised
from citygrid.kit.models import utcnow
from citygrid.kit.web import SessionDep, render, templates
from citygrid.registry.schemas import DEPARTMENT_SLUGS
from citygrid.web.pages import local_path

router = APIRouter(include_in_schema=False)


class CaseRefConvertor(Convertor[str]):
    """A case reference in a path: 16 to 24 URL-safe characters."""

    regex = "[A-Za-z0-9_-]{16,24}"

    def convert(self, value: str) -> str:
        """The reference as it is."""
        return value

    def to_string(self, value: str) -> str:
        """The reference as it is."""
        return value


register_url_convertor("caseref", CaseRefConvertor())


def clock(value: datetime | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
    """A moment as the city's clocks show it (China Standard Time)."""
    return "" if value is None else value.astimezone(CHINA_STANDARD_TIME).strftime(pattern)


templates.env.filters["clock"] = clock

#: Who works in the command centre (officials watch; dispatchers and district officials act).
COMMAND_ROLES = frozenset(
    {
        Role.DISPATCHER.value,
        Role.DISTRICT_OFFICIAL.value,
        Role.STREET_OFFICIAL.value,
        Role.COMMUNITY_OFFICIAL.value,
        Role.CITY_OFFICIAL.value,
    }
)
#: Cases in the command centre's feed before live events add more.
FEED_SIZE = 30
#: Cases per page of the list.
PAGE_SIZE = 50

#: The order in which a page offers the actions.
ACTION_ORDER = (
    Action.REGISTER,
    Action.REJECT,
    Action.DISPATCH,
    Action.ACCEPT,
    Action.RETURN,
    Action.FEEDBACK,
    Action.VERIFY,
    Action.EVALUATE,
)


# ============================================================================ labels


def state_labels() -> dict[str, str]:
    """Each state's name in the current locale."""
    return {
        "reported": _("Reported"),
        "registered": _("Case registered"),
        "rejected": _("Not registered"),
        "dispatched": _("Dispatched"),
        "handling": _("Being handled"),
        "handled": _("Handled"),
        "closed": _("Closed"),
        "evaluated": _("Evaluated"),
    }


def action_labels() -> dict[str, str]:
    """Each action's name (as a step of the history and as a button)."""
    return {
        "report": _("Reported"),
        "register": _("Register"),
        "reject": _("Reject"),
        "dispatch": _("Dispatch"),
        "return": _("Return to the command centre"),
        "accept": _("Start handling"),
        "feedback": _("Report as handled"),
        "verify": _("Verify on site"),
        "evaluate": _("Evaluate"),
        "escalate": _("Escalated as overdue"),
        "me_too": _("Someone else reported it too"),
    }


def done_labels() -> dict[str, str]:
    """What the page says after an action was taken."""
    return {
        "register": _("The case is registered."),
        "reject": _("The report was rejected."),
        "dispatch": _("The case was dispatched."),
        "return": _("The case went back to the command centre."),
        "accept": _("You are handling the case now."),
        "feedback": _("The case is reported as handled; the grid worker will verify it."),
        "verify": _("Your verification is recorded."),
        "evaluate": _("The evaluation is recorded."),
    }


def priority_labels() -> dict[str, str]:
    """Each priority's name."""
    return {"urgent": _("Urgent"), "high": _("High"), "normal": _("Normal")}


def source_labels() -> dict[str, str]:
    """Where a report came from."""
    return {
        "grid_worker": _("Grid worker"),
        "hotline": _("Hotline"),
        "citizen": _("Citizen"),
        "open311": _("Open311 client"),
    }


def department_labels() -> dict[str, str]:
    """Each department's name."""
    labels = {
        "public-security": _("Public Security Bureau"),
        "family-planning": _("Health and Family Planning"),
        "civil-affairs": _("Civil Affairs Bureau"),
        "social-security": _("Human Resources and Social Security"),
        "rental-housing": _("Rental Housing Office"),
        "housing-construction": _("Housing and Construction"),
        "water-affairs": _("Water Affairs Bureau"),
        "market-regulation": _("Market Regulation"),
        "urban-management": _("Urban Management"),
        "landscaping": _("Landscaping and Forestry"),
        "power-supply": _("Power Supply"),
        "transport": _("Transport Bureau"),
    }
    return {slug: labels.get(slug, slug) for slug in sorted(DEPARTMENT_SLUGS)}


def reason_labels() -> dict[str, str]:
    """Why a report was not registered."""
    return {
        "not_meeting_criterion": _("Does not meet the registration criterion"),
        "duplicate": _("Duplicate of another case"),
    }


def photo_stage_labels() -> dict[str, str]:
    """When a photo was taken."""
    return {
        "reported": _("With the report"),
        "feedback": _("With the department's feedback"),
        "verification": _("At the verification on site"),
    }


def _labels() -> dict[str, Any]:
    return {
        "photo_stage_labels": photo_stage_labels(),
        "state_labels": state_labels(),
        "action_labels": action_labels(),
        "priority_labels": priority_labels(),
        "source_labels": source_labels(),
        "department_labels": department_labels(),
        "reason_labels": reason_labels(),
    }


def category_name(code: str) -> str:
    """A category's name in the current locale (its code if it left the catalogue)."""
    category = load_catalogue().get(code)
    return localised(category.name_zh, category.name_en) if category else code


# ============================================================================ helpers


@dataclass(frozen=True)
class CaseView:
    """A case as a page shows it: the API shape, its category and what the user may do."""

    case: CaseRead | CaseDetail
    category: Category | None
    actions: list[str]

    @property
    def ref(self) -> str:
        """The case's opaque reference."""
        return self.case.id


def _view(session: Session, actor: Actor, case: Case, now: datetime, *, detail: bool) -> CaseView:
    shape: CaseRead | CaseDetail = (
        service.detail_of(session, case, now=now)
        if detail
        else service.case_read(session, case, now=now)
    )
    allowed = set(service.actions_for(actor, case, now=now))
    return CaseView(
        case=shape,
        category=load_catalogue().get(case.category),
        actions=[action.value for action in ACTION_ORDER if action in allowed],
    )


def _require_command_centre(actor: Actor) -> None:
    if actor.role not in COMMAND_ROLES:
        raise Forbidden(_("The command centre is for dispatchers and officials."))


def _with_done(target: str, action: str) -> str:
    parts = urlsplit(target)
    query = "&".join(
        piece for piece in parts.query.split("&") if piece and not piece.startswith("done=")
    )
    query = f"{query}&{urlencode({'done': action})}" if query else urlencode({"done": action})
    return f"{parts.path}?{query}{'#' + parts.fragment if parts.fragment else ''}"


def _done_message(done: str | None) -> str | None:
    return done_labels().get(done) if done else None


def map_point(view: CaseView) -> dict[str, Any]:
    """What the command centre's map needs of a case (no description, no personal data)."""
    case = view.case
    return {
        "ref": case.id,
        "lat": case.lat,
        "lon": case.lon,
        "state": case.state.value,
        "overdue": case.overdue,
        "category": case.category,
        "priority": case.priority.value,
        "grid_code": case.grid_code,
        "reported_at": case.reported_at.isoformat(),
        "deadline_at": case.deadline_at.isoformat() if case.deadline_at else None,
        "department": case.department,
    }


def _panel_context(session: Session, actor: Actor, case_ref: str, now: datetime) -> dict[str, Any]:
    case = service.get_case(session, actor, case_ref=case_ref)
    view = _view(session, actor, case, now, detail=False)
    duplicates = []
    if Action.REJECT.value in view.actions:
        duplicates = [
            (service.case_read(session, item.case, now=now), round(item.distance_m))
            for item in service.suggest_duplicates(session, actor, case_ref=case_ref)
        ]
    return {"selected": view, "duplicates": duplicates}


def _command_labels() -> dict[str, Any]:
    """The command centre script's words (it has no catalogue of its own)."""
    return {
        "states": state_labels(),
        "priorities": priority_labels(),
        "departments": department_labels(),
        "categories": {
            item.code: localised(item.name_zh, item.name_en) for item in load_catalogue()
        },
        "overdue": _("Overdue"),
        "new": _("New"),
        "changed": _("Changed"),
        "open": _("Open in the panel"),
        "page": _("Case page"),
        "live": _("Live: new cases appear here as they are reported."),
        "reconnecting": _("Connection lost; reconnecting…"),
        "loading": _("Loading…"),
        "failed": _("The case could not be loaded."),
    }


# ============================================================================ command centre


@router.get("/command", response_class=HTMLResponse)
def command_centre(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    case: Annotated[str | None, Query(max_length=24)] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The command centre: live map and feed of open cases, the queue and the dispatch
    panel of the case chosen (``?case=REF``)."""
    _require_command_centre(actor)
    now = utcnow()
    views = [
        _view(session, actor, row, now, detail=False) for row in service.open_cases(session, actor)
    ]
    queue = sorted(
        (view for view in views if view.case.state in (CaseState.REPORTED, CaseState.REGISTERED)),
        key=lambda view: view.case.reported_at,
    )
    context: dict[str, Any] = {"selected": None, "duplicates": []}
    if case:
        context = _panel_context(session, actor, case, now)
    district = next((scope[:6] for scope in actor.scopes if len(scope) >= 6), "")
    return render(
        request,
        "cases/command.html",
        **_labels(),
        **context,
        feed=views[:FEED_SIZE],
        queue=queue,
        points=[map_point(view) for view in views],
        overdue_count=sum(1 for view in views if view.case.overdue),
        district_code=district,
        command_labels=_command_labels(),
        tile_url=request.app.state.settings.map_tile_url,
        done_message=_done_message(done),
        category_name=category_name,
    )


@router.get("/command/panel/{case_ref:caseref}", response_class=HTMLResponse)
def command_panel(
    request: Request, session: SessionDep, actor: CurrentActor, case_ref: str
) -> Response:
    """The dispatch panel of one case, alone (the command centre's script loads it)."""
    _require_command_centre(actor)
    context = _panel_context(session, actor, case_ref, utcnow())
    return render(
        request,
        "cases/_panel.html",
        **_labels(),
        **context,
        category_name=category_name,
    )


# ============================================================================ lists


@router.get("/cases", response_class=HTMLResponse)
def case_list(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    state: Annotated[str | None, Query(max_length=20)] = None,
    overdue: Annotated[str | None, Query(max_length=5)] = None,
    grid: Annotated[str | None, Query(max_length=15)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Cases in the user's territory, newest first, filtered by state, overdue and
    territorial code."""
    chosen_state: CaseState | None = None
    if state:
        try:
            chosen_state = CaseState(state)
        except ValueError:
            raise ValidationFailed.one("state", _("not a state of the case loop")) from None
    if overdue not in (None, "", "yes", "no"):
        raise ValidationFailed.one("overdue", _("say yes or no"))
    now = utcnow()
    page = service.list_cases(
        session,
        actor,
        state=chosen_state,
        grid=grid or None,
        overdue={"yes": True, "no": False}.get(overdue or ""),
        limit=PAGE_SIZE,
        offset=offset,
        now=now,
    )
    filters = {"state": state or "", "overdue": overdue or "", "grid": grid or ""}
    query = {key: value for key, value in filters.items() if value}
    return render(
        request,
        "cases/list.html",
        **_labels(),
        cases=page.items,
        filters=filters,
        next_url=f"/cases?{urlencode({**query, 'offset': page.next_offset})}"
        if page.next_offset is not None
        else None,
        previous_url=f"/cases?{urlencode({**query, 'offset': max(0, offset - PAGE_SIZE)})}"
        if offset > 0
        else None,
        category_name=category_name,
    )


@dataclass(frozen=True)
class FormFailure:
    """A refused form, shown again on the page it came from: the case and action of the
    form, the reasons by field (``photos[0]`` as ``photos``), every reason as sent, and the
    note typed (given back so that nothing has to be typed twice)."""

    ref: str
    action: str
    errors: dict[str, str]
    details: list[dict[str, str]]
    note: str = ""

    @classmethod
    def of(cls, case_ref: str, fields: dict[str, Any], error: CitygridError) -> FormFailure:
        """The failure of ``error`` for the form of ``case_ref`` that sent ``fields``."""
        details: list[dict[str, str]] = []
        errors: dict[str, str] = {}
        items = error.details if isinstance(error.details, list) else []
        for item in items:
            if isinstance(item, dict) and "field" in item:
                name, reason = str(item["field"]), str(item.get("reason", ""))
                details.append({"field": name, "reason": reason})
                errors.setdefault(name.split("[", 1)[0].split(".", 1)[0], reason)
        if not details:
            details.append({"field": "form", "reason": error.message})
        note = fields.get("note")
        return cls(
            ref=case_ref,
            action=str(fields.get("action", "")),
            errors=errors,
            details=details,
            note=note if isinstance(note, str) else "",
        )


def _inbox_page(
    request: Request,
    session: Session,
    actor: Actor,
    *,
    done: str | None = None,
    failure: FormFailure | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    now = utcnow()
    views = [
        _view(session, actor, row, now, detail=False)
        for row in service.department_inbox(session, actor)
    ]
    return render(
        request,
        "cases/inbox.html",
        status_code=status_code,
        **_labels(),
        views=views,
        department=actor.department,
        overdue_count=sum(1 for view in views if view.case.overdue),
        done_message=_done_message(done),
        form_error=failure,
        category_name=category_name,
    )


@router.get("/inbox", response_class=HTMLResponse)
def inbox(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The department's dispatched and handling cases, soonest deadline first."""
    return _inbox_page(request, session, actor, done=done)


def _verifications_page(
    request: Request,
    session: Session,
    actor: Actor,
    *,
    done: str | None = None,
    failure: FormFailure | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    now = utcnow()
    views = [
        _view(session, actor, row, now, detail=False)
        for row in service.awaiting_verification(session, actor)
    ]
    return render(
        request,
        "cases/verifications.html",
        status_code=status_code,
        **_labels(),
        views=views,
        grids=service.own_grids(actor),
        done_message=_done_message(done),
        form_error=failure,
        category_name=category_name,
    )


@router.get("/my/verifications", response_class=HTMLResponse)
def verifications(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The grid worker's handled cases waiting for her check on site."""
    return _verifications_page(request, session, actor, done=done)


# ============================================================================ the case page

#: The purpose for which the case page reads the reporter's contact.
REPORTER_PURPOSE = "case-handling"


def reporter_labels() -> dict[str, str]:
    """The reporter's fields by their answer names."""
    return {"name": _("Name"), "phone": _("Phone")}


def _case_page(
    request: Request,
    session: Session,
    actor: Actor,
    case_ref: str,
    *,
    done: str | None = None,
    failure: FormFailure | None = None,
    revealed: ReporterRead | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The case page; the reporter's contact read through the gateway (masked, audited) when
    the case has one and the user's role may see it, or as just ``revealed``."""
    case = service.get_case(session, actor, case_ref=case_ref)
    reporter = revealed
    audited = revealed is not None
    if reporter is None and intake.shows_reporter(actor, case, purpose=REPORTER_PURPOSE):
        begin_audited_read(session)
        audited = True
        try:
            reporter = intake.reporter(session, actor, case_ref=case_ref, purpose=REPORTER_PURPOSE)
        except CitygridError as error:
            # Logged as denied; the page shows the case without the contact.
            gateway.record_denial(session, error)
    now = utcnow()
    view = _view(session, actor, case, now, detail=True)
    response = render(
        request,
        "cases/case.html",
        status_code=status_code,
        **_labels(),
        view=view,
        detail=view.case,
        is_open=case.state in OPEN_STATES,
        done_message=_done_message(done),
        form_error=failure,
        reporter=reporter,
        reporter_revealed=revealed is not None,
        reporter_labels=reporter_labels(),
        reporter_purpose=REPORTER_PURPOSE,
        category_name=category_name,
        tile_url=request.app.state.settings.map_tile_url,
    )
    if audited:
        # The read and its access-log entry are committed before the page leaves.
        commit_before_answering(session)
    return response


@router.get("/cases/{case_ref:caseref}", response_class=HTMLResponse)
def case_page(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    case_ref: str,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """One case: details, category and criteria, place, deadline, history, photos, the
    reporter's contact where the role may see it (masked), and the forms of the actions
    this user may take now."""
    return _case_page(request, session, actor, case_ref, done=done)


@router.post("/cases/{case_ref:caseref}/reporter/reveal", response_class=HTMLResponse)
def reveal_reporter(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    case_ref: str,
    purpose: Annotated[str | None, Form(max_length=40)] = None,
    fields: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """The reporter's chosen fields in clear on the case page, where the role's policy lets
    the purpose reveal them (audited with the fields revealed; a refusal is logged too)."""
    wanted = intake.parse(ReporterReveal, {"purpose": purpose or "", "fields": fields or []})
    begin_audited_read(session)
    try:
        shown = intake.reporter(
            session, actor, case_ref=case_ref, purpose=wanted.purpose, reveal=wanted.fields
        )
    except CitygridError as error:
        return _refused(request, session, error)
    return _case_page(request, session, actor, case_ref, revealed=shown)


def _refused(request: Request, session: Session, error: CitygridError) -> HTMLResponse:
    """The error page, after logging (and committing) the refusal the error carries: the
    denied entry stays even though nothing else of the request does."""
    gateway.record_denial(session, error)
    commit_before_answering(session)
    return render(
        request,
        "error.html",
        status_code=error.status_code,
        error=error.to_dict()["error"],
        status=error.status_code,
        show_message=True,
    )


async def _transition_form(request: Request, actor: CurrentActor) -> PageSubmission:
    """The form's fields and checked photos, read once the caller is known and before the
    write lock; a refusal is kept to be shown on the form's page."""
    read = await page_submission(request)
    content_type = request.headers.get("content-type", "").lower()
    if (
        read.submission is None
        and isinstance(read.error, ValidationFailed)
        and content_type.startswith(FORM_TYPES)
    ):
        # Photos refused: the form's own fields (parsed already) still tell which page to
        # show again and what was typed.
        fields, extra = form_fields(await request.form())
        return PageSubmission(Submission(fields=fields, extra=extra, is_form=True), read.error)
    return read


TransitionFormDep = Annotated[PageSubmission, Depends(_transition_form)]

#: The longest ``next`` a form may send.
NEXT_MAX = 300
#: The pages a transition form may be shown again on, besides the case page.
_FORM_PAGES = {"/inbox": _inbox_page, "/my/verifications": _verifications_page}


def _back_to(case_ref: str, next_page: Any) -> str:
    """Where to go after the step: a local path sent as ``next``, else the case page."""
    if not isinstance(next_page, str) or len(next_page) > NEXT_MAX:
        return f"/cases/{case_ref}"
    target = local_path(next_page)
    return f"/cases/{case_ref}" if target == "/" else target


@router.post("/cases/{case_ref:caseref}/transitions", response_class=HTMLResponse)
def post_transition(
    request: Request,
    actor: CurrentActor,
    form: TransitionFormDep,
    session: WriteSessionDep,
    case_ref: str,
) -> Response:
    """Take a step of the loop from a page's form (photos with feedback and verify, checked
    as the API checks them), then go back to the page. Bad fields or photos show that page
    again (422) with the reasons by the form's fields, and nothing changed."""
    submission = form.submission
    fields = dict(submission.fields) if submission is not None else {}
    target = _back_to(case_ref, fields.pop("next", None))
    error = form.error
    if submission is not None and error is None:
        try:
            with session.begin_nested():
                step = intake.parse(TransitionCreate, fields)
                intake.apply_transition(
                    session,
                    actor,
                    case_ref=case_ref,
                    request=step,
                    photos=submission.photos,
                    store=intake.photo_store(request_settings(request)),
                )
        except ValidationFailed as refused:
            error = refused
        else:
            return RedirectResponse(_with_done(target, step.action.value), status_code=303)
    assert error is not None  # noqa: S101 - either taken or refused
    failure = FormFailure.of(case_ref, fields, error)
    status_code = error.status_code
    again = _FORM_PAGES.get(urlsplit(target).path)
    if again is not None:
        return again(request, session, actor, failure=failure, status_code=status_code)
    return _case_page(request, session, actor, case_ref, failure=failure, status_code=status_code)
