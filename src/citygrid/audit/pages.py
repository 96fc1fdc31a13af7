"""The auditor's pages: search the access log, see its checkpoints, run verify.

``/audit`` (search) is the auditor's alone: who looked at whom is theirs to review.
``/audit/checkpoints`` and ``POST /audit/verify`` are the auditor's and the administrator's:
checking the log's integrity reveals nobody. Anyone else signed in gets 403 (the pages'
existence is no secret, unlike a person outside one's scope) and the refusal is logged.
The search form is a GET form: its fields (account names, a person's opaque ref, a purpose,
dates) are not personal data; there is deliberately no search by name or ID number.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from citygrid.access.deps import CurrentActor
from citygrid.access.persons_api import begin_audited_read, commit_before_answering
from citygrid.access.policy import default_policy
from citygrid.audit import service as audit
from citygrid.audit.signing import SigningKeyMissing, published_public_keys
from citygrid.kit.actor import Actor
from citygrid.kit.errors import CitygridError
from citygrid.kit.i18n import _, localised
from citygrid.kit.settings import Settings
from citygrid.kit.web import SessionDep, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
CHECKPOINTS_PAGE_SIZE = 50
# Subjects shown per entry; a grid's list names hundreds (the rest are counted).
SUBJECTS_SHOWN = 3


def _refused(request: Request, session: Session, error: CitygridError) -> Response:
    """The error page, keeping what the service appended (a denied entry) in the log."""
    commit_before_answering(session)
    return render(
        request,
        "error.html",
        status_code=error.status_code,
        error=error.to_dict()["error"],
        status=error.status_code,
        show_message=True,
    )


def _public_keys(settings: Settings) -> list[bytes]:
    try:
        return published_public_keys(settings)
    except SigningKeyMissing:
        return []


def _parse_day(value: str | None, field: str, errors: list[dict[str, str]]) -> date | None:
    if not value or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        errors.append({"field": field, "reason": _("must be a date (YYYY-MM-DD)")})
        return None


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _text(value: str | None) -> str:
    return value.strip() if value else ""


def purpose_options() -> list[tuple[str, str]]:
    """The purposes of the catalogue, (code, name in the current locale)."""
    purposes = default_policy().purposes.values()
    return [(p.code, localised(p.name_zh, p.name_en)) for p in purposes]


def problem_text(problem: dict[str, Any]) -> str:
    """What verify found, in words (the ids and positions are shown beside it)."""
    texts = {
        "altered": _("An entry was altered: its content no longer matches its hash."),
        "removed": _("An entry was removed from the log."),
        "inserted": _(
            "An entry was inserted behind the log's back: it is older than a "
            "signed checkpoint but not in the tree."
        ),
        "bad_signature": _("A checkpoint's signature does not verify with the published keys."),
        "bad_checkpoint": _("A checkpoint's stored size or root differs from its signed note."),
        "root_mismatch": _("The log differs from a signed checkpoint within these positions."),
    }
    return texts.get(str(problem.get("kind")), _("The log does not verify."))


def _ensure(session: Session, actor: Actor, action: str) -> None:
    if not audit.may(actor, action):
        begin_audited_read(session)  # the refusal is written to the log
    audit.authorise(session, actor, action=action)


@router.get("/audit", response_class=HTMLResponse)
def search_page(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    actor_name: Annotated[str | None, Query(alias="actor", max_length=100)] = None,
    subject: Annotated[str | None, Query(max_length=24)] = None,
    purpose: Annotated[str | None, Query(max_length=60)] = None,
    since: Annotated[str | None, Query(max_length=10)] = None,
    until: Annotated[str | None, Query(max_length=10)] = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Search the access log by account, person (opaque ref), purpose and days; newest first."""
    begin_audited_read(session)
    try:
        _ensure(session, actor, audit.ACTION_SEARCH)
    except CitygridError as error:
        return _refused(request, session, error)
    form = {
        "actor": _text(actor_name),
        "subject": _text(subject),
        "purpose": _text(purpose),
        "since": _text(since),
        "until": _text(until),
    }
    errors: list[dict[str, str]] = []
    first_day = _parse_day(since, "since", errors)
    last_day = _parse_day(until, "until", errors)
    # The page searches once the form was sent (any parameter), not on a bare visit: every
    # search is an entry in the log.
    searched = bool(request.query_params) and not errors
    page = None
    if searched:
        filters = audit.EntryFilters(
            actor=form["actor"] or None,
            subject=form["subject"] or None,
            purpose=form["purpose"] or None,
            since=_start_of(first_day) if first_day else None,
            # The last day is included: the search runs until the start of the day after.
            until=_start_of(last_day + timedelta(days=1)) if last_day else None,
        )
        try:
            page = audit.search_entries(
                session, actor, filters=filters, limit=PAGE_SIZE, before_id=before_id
            )
        except CitygridError as error:
            if error.status_code != 422:
                return _refused(request, session, error)
            errors.extend(error.details or [])
        commit_before_answering(session)
    query = {key: value for key, value in form.items() if value}
    next_url = None
    if page is not None and page.next_before_id is not None:
        next_url = "/audit?" + urlencode({**query, "before_id": page.next_before_id})
    return render(
        request,
        "audit/search.html",
        status_code=422 if errors else 200,
        form=form,
        errors=errors,
        page=page,
        searched=searched,
        continued=before_id is not None,
        first_url="/audit?" + urlencode(query or {"search": "1"}),
        next_url=next_url,
        purposes=purpose_options(),
        subjects_shown=SUBJECTS_SHOWN,
    )


def _checkpoints_view(
    request: Request,
    session: Session,
    actor: Actor,
    *,
    before_id: int | None,
    report: audit.VerifyReport | None = None,
) -> Response:
    settings: Settings = request.app.state.settings
    keys = _public_keys(settings)
    items, next_before_id = audit.checkpoints_page(
        session, before_id=before_id, limit=CHECKPOINTS_PAGE_SIZE
    )
    return render(
        request,
        "audit/checkpoints.html",
        checkpoints=items,
        statuses={cp.id: audit.signature_status(cp, keys) for cp in items},
        tree_size=audit.tree_size(session),
        next_url=f"/audit/checkpoints?before_id={next_before_id}" if next_before_id else None,
        continued=before_id is not None,
        report=report,
        problem=problem_text(report.problem) if report and report.problem else None,
        may_search=audit.may(actor, audit.ACTION_SEARCH),
    )


@router.get("/audit/checkpoints", response_class=HTMLResponse)
def checkpoints_page(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The signed checkpoints, newest first, with their signatures checked, and verify."""
    try:
        _ensure(session, actor, audit.ACTION_VERIFY)
    except CitygridError as error:
        return _refused(request, session, error)
    return _checkpoints_view(request, session, actor, before_id=before_id)


@router.post("/audit/verify", response_class=HTMLResponse)
def run_verify(request: Request, session: SessionDep, actor: CurrentActor) -> Response:
    """Recompute every hash of the log and check every checkpoint; show the report."""
    try:
        _ensure(session, actor, audit.ACTION_VERIFY)
    except CitygridError as error:
        return _refused(request, session, error)
    settings: Settings = request.app.state.settings
    report = audit.verify(session, public_keys=_public_keys(settings))
    return _checkpoints_view(request, session, actor, before_id=None, report=report)
