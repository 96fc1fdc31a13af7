"""The access log's JSON API: what an outsider needs to check it, and the auditor's search.

Public (no sign-in; no personal data): the public key, the checkpoints. Auditors and
administrators: inclusion proofs. Auditors: the entries. Every read of entries or proofs is
itself logged (purpose ``audit-review``), and so is a refusal.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from citygrid.access.deps import CurrentActor

# A read and its log entry in one transaction, committed before the answer leaves; on SQLite
# holding the write lock from the start (see there).
from citygrid.access.persons_api import begin_audited_read, commit_before_answering
from citygrid.audit import service as audit
from citygrid.audit.schemas import (
    CheckpointList,
    CheckpointOut,
    EntryList,
    EntryOut,
    ProofOut,
    PublicKeyRead,
    PublishedKeys,
)
from citygrid.audit.signing import (
    SigningKeyMissing,
    key_id,
    public_key_pem,
    published_public_keys,
)
from citygrid.kit.errors import CitygridError, Conflict, NotFound
from citygrid.kit.i18n import _
from citygrid.kit.settings import Settings
from citygrid.kit.web import SessionDep

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class KeyNotConfigured(CitygridError):
    """The server has no audit signing key configured."""

    status_code = 503
    code = "not_configured"


# Seconds until the sequencer (every second) has most likely signed a checkpoint covering it.
RETRY_AFTER_SECONDS = 2


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _key_read(public_key: bytes) -> PublicKeyRead:
    return PublicKeyRead(
        key_id=key_id(public_key),
        public_key=base64.b64encode(public_key).decode(),
        pem=public_key_pem(public_key),
    )


def _refused(session: Session, error: CitygridError) -> Response:
    """The error's answer, keeping what the service appended (a denied entry) in the log."""
    commit_before_answering(session)
    headers = None
    if isinstance(error, Conflict) and error.code == audit.NOT_YET_CHECKPOINTED:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return JSONResponse(error.to_dict(), status_code=error.status_code, headers=headers)


@router.get("/public-key", response_model=PublishedKeys)
def public_key(request: Request) -> PublishedKeys:
    """The Ed25519 key that signs checkpoints (and keys retired by rotation). Public."""
    settings = _settings(request)
    try:
        current, *retired = published_public_keys(settings)
    except SigningKeyMissing:
        raise KeyNotConfigured(_("The access log's signing key is not configured.")) from None
    return PublishedKeys(
        **_key_read(current).model_dump(),
        origin=settings.audit_log_origin,
        retired=[_key_read(key) for key in retired],
    )


@router.get("/checkpoints/latest", response_model=CheckpointOut)
def latest_checkpoint(session: SessionDep) -> CheckpointOut:
    """The newest signed tree head. Public: a checkpoint holds no personal data."""
    latest = audit.latest_checkpoint(session)
    if latest is None:
        raise NotFound(_("The access log has no checkpoint yet."))
    return CheckpointOut.model_validate(latest)


@router.get("/checkpoints", response_model=CheckpointList)
def checkpoints(
    session: SessionDep,
    before_id: Annotated[int | None, Query(ge=1, description="From a previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 50,
) -> CheckpointList:
    """Signed tree heads, newest first. Public."""
    items, next_before_id = audit.checkpoints_page(session, before_id=before_id, limit=limit)
    return CheckpointList(
        items=[CheckpointOut.model_validate(cp) for cp in items], next_before_id=next_before_id
    )


@router.get(
    "/entries/{entry_id}/proof",
    response_model=ProofOut,
    responses={409: {"description": "Not in a signed checkpoint yet (see Retry-After)"}},
)
def entry_proof(session: SessionDep, actor: CurrentActor, entry_id: int) -> Response | ProofOut:
    """An inclusion proof of the entry against the latest signed checkpoint, checkable with
    the public key alone (docs/audit.md). Auditors and administrators; logged."""
    begin_audited_read(session)
    try:
        proof = audit.proof_for(session, actor, entry_id=entry_id)
    except CitygridError as error:
        return _refused(session, error)
    commit_before_answering(session)
    return ProofOut.model_validate(proof)


def _text(value: str | None) -> str | None:
    """An empty query parameter (as a GET form sends it) means no filter."""
    return value.strip() or None if value is not None else None


@router.get("/entries", response_model=EntryList)
def entries(
    session: SessionDep,
    actor: CurrentActor,
    actor_name: Annotated[
        str | None, Query(alias="actor", max_length=100, description="Account or client")
    ] = None,
    subject: Annotated[
        str | None, Query(max_length=24, description="A person's opaque ref")
    ] = None,
    purpose: Annotated[str | None, Query(max_length=60)] = None,
    since: Annotated[datetime | None, Query(description="From (inclusive)")] = None,
    until: Annotated[datetime | None, Query(description="Until (exclusive)")] = None,
    before_id: Annotated[int | None, Query(ge=1, description="From a previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 50,
) -> Response | EntryList:
    """Entries of the access log, newest first (times without a zone are UTC). Auditors only;
    the search is logged."""
    filters = audit.EntryFilters(
        actor=_text(actor_name),
        subject=_text(subject),
        purpose=_text(purpose),
        since=since,
        until=until,
    )
    begin_audited_read(session)
    try:
        page = audit.search_entries(
            session, actor, filters=filters, limit=limit, before_id=before_id
        )
    except CitygridError as error:
        return _refused(session, error)
    commit_before_answering(session)
    return EntryList(
        items=[EntryOut.model_validate(item) for item in page.items],
        next_before_id=page.next_before_id,
        limit=page.limit,
    )
