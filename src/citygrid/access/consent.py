"""The consent store: a resident's consent that a requester (a department, or a role without
one) reads some field classes of their data for a purpose whose legal basis is consent.

A consent is *active* on a day when its status is ``active`` and the day lies within
``[valid_from, valid_until]`` (an open ``valid_until`` lasts until revoked). A consent past
its ``valid_until`` is expired whatever its status column says. Every grant and revocation is
written to the access log in the caller's transaction (actions ``consent_granted`` and
``consent_revoked``).

The queries of the ``consents`` table live here, in one section at the end: the access
domain has no repository module of its own yet (the table is this module's alone).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Row, and_, or_, select
from sqlalchemy.orm import Session

from citygrid.access.models import Consent, ConsentStatus
from citygrid.access.policy import LegalBasis, default_policy
from citygrid.audit import service as audit
from citygrid.kit.actor import Actor
from citygrid.kit.clock import local_today
from citygrid.kit.errors import Conflict, NotFound, ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.models import utcnow
from citygrid.registry import repository as registry

ACTION_GRANTED = "consent_granted"
ACTION_REVOKED = "consent_revoked"

#: How a consent may have been obtained.
OBTAINED_VIA = ("cli", "paper", "sms", "portal")

#: The effective states of a consent (``not_yet_valid``: active but before ``valid_from``).
ACTIVE = "active"
REVOKED = "revoked"
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"


@dataclass(frozen=True, slots=True)
class ConsentRead:
    """A consent as the store shows it, with its effective status on the day asked."""

    id: int
    person_ref: str
    requester_department: str
    purpose: str
    field_classes: tuple[str, ...]
    valid_from: date
    valid_until: date | None
    status: str
    obtained_via: str
    created_at: datetime | None
    revoked_at: datetime | None


def requester_of(actor: Actor) -> str:
    """Who asks, as consents name it: the actor's department, else the actor's role."""
    return actor.department or actor.role


def effective_status(status: str, valid_from: date, valid_until: date | None, *, on: date) -> str:
    """The state of a consent on a day: revoked, expired (by status or by date), not yet
    valid, or active."""
    if status == ConsentStatus.REVOKED.value:
        return REVOKED
    if status == ConsentStatus.EXPIRED.value or (valid_until is not None and on > valid_until):
        return EXPIRED
    if on < valid_from:
        return NOT_YET_VALID
    return ACTIVE


def _read(consent: Consent, person_ref: str, on: date) -> ConsentRead:
    return ConsentRead(
        id=consent.id,
        person_ref=person_ref,
        requester_department=consent.requester_department,
        purpose=consent.purpose,
        field_classes=tuple(consent.field_classes),
        valid_from=consent.valid_from,
        valid_until=consent.valid_until,
        status=effective_status(
            ConsentStatus(consent.status).value,
            consent.valid_from,
            consent.valid_until,
            on=on,
        ),
        obtained_via=consent.obtained_via,
        created_at=consent.created_at,
        revoked_at=consent.revoked_at,
    )


def _person(session: Session, actor: Actor, person_ref: str) -> int:
    # The CLI (a system actor) serves every resident; anyone else only those in their scope.
    key = registry.person_key(session, ref=person_ref) if len(person_ref) <= 24 else None
    if key is None:
        raise NotFound(_("No such person."))
    person_id, grid_code = key
    if actor.kind != "system" and not any(grid_code.startswith(p) for p in actor.scopes if p):
        raise NotFound(_("No such person."))
    return person_id


def _audit(
    session: Session, actor: Actor, *, action: str, consent: Consent, person_ref: str
) -> None:
    audit.append(
        session,
        audit.record_for(
            actor,
            action=action,
            outcome=audit.ALLOWED,
            purpose=consent.purpose,
            subjects=(person_ref,),
            fields=tuple(consent.field_classes),
            request_id=actor.request_id,
            client_address=actor.client_address,
            detail={
                "policy_version": default_policy().version,
                "consent_id": consent.id,
                "requester_department": consent.requester_department,
                "valid_from": consent.valid_from.isoformat(),
                "valid_until": consent.valid_until.isoformat() if consent.valid_until else None,
                "obtained_via": consent.obtained_via,
            },
        ),
    )


def grant_consent(
    session: Session,
    actor: Actor,
    *,
    person_ref: str,
    requester_department: str,
    purpose: str,
    field_classes: Iterable[str],
    valid_from: date,
    valid_until: date | None,
    obtained_via: str,
) -> ConsentRead:
    """Record a resident's consent (audited); ValidationFailed names every bad field."""
    policy = default_policy()
    problems: list[dict[str, str]] = []
    if requester_department not in policy.departments and requester_department not in (
        policy.roles
    ):
        problems.append(
            {
                "field": "requester_department",
                "reason": _("not a department or role of the policy"),
            }
        )
    found = policy.purposes.get(purpose)
    if found is None:
        problems.append({"field": "purpose", "reason": _("not in the catalogue of purposes")})
    elif found.legal_basis is not LegalBasis.CONSENT:
        problems.append(
            {"field": "purpose", "reason": _("this purpose rests on a statutory duty, not consent")}
        )
    wanted = set(field_classes)
    classes = tuple(name for name in policy.field_classes if name in wanted)
    if not wanted:
        problems.append({"field": "field_classes", "reason": _("name at least one field class")})
    elif len(classes) != len(wanted):
        problems.append({"field": "field_classes", "reason": _("unknown field class")})
    if valid_until is not None and valid_until < valid_from:
        problems.append({"field": "valid_until", "reason": _("must not be before valid_from")})
    if obtained_via not in OBTAINED_VIA:
        problems.append(
            {"field": "obtained_via", "reason": _("must be one of: cli, paper, sms, portal")}
        )
    if problems:
        message = "; ".join(f"{p['field']}: {p['reason']}" for p in problems)
        raise ValidationFailed(message, details=problems)
    person_id = _person(session, actor, person_ref)
    consent = Consent(
        person_id=person_id,
        requester_department=requester_department,
        purpose=purpose,
        field_classes=list(classes),
        valid_from=valid_from,
        valid_until=valid_until,
        status=ConsentStatus.ACTIVE,
        obtained_via=obtained_via,
    )
    session.add(consent)
    session.flush()
    _audit(session, actor, action=ACTION_GRANTED, consent=consent, person_ref=person_ref)
    session.flush()
    return _read(consent, person_ref, local_today())


def revoke_consent(session: Session, actor: Actor, *, consent_id: int) -> ConsentRead:
    """Revoke a consent from now on (audited); Conflict when it is already revoked."""
    consent = session.get(Consent, consent_id)
    refs = registry.person_refs(session, person_ids=[consent.person_id]) if consent else {}
    if consent is None or consent.person_id not in refs:
        raise NotFound(_("No such consent."))
    person_ref = refs[consent.person_id]
    _person(session, actor, person_ref)  # the same scope rule as granting
    if consent.status == ConsentStatus.REVOKED:
        raise Conflict(_("This consent is already revoked."), code="already_revoked")
    consent.status = ConsentStatus.REVOKED
    consent.revoked_at = utcnow()
    session.flush()
    _audit(session, actor, action=ACTION_REVOKED, consent=consent, person_ref=person_ref)
    session.flush()
    return _read(consent, person_ref, local_today())


def active_consent(
    session: Session,
    *,
    person_ref: str,
    requester_department: str,
    purpose: str,
    on: date | None = None,
) -> ConsentRead | None:
    """The newest consent of a person for a requester and purpose that is active on ``on``
    (today by default), if any."""
    key = registry.person_key(session, ref=person_ref) if len(person_ref) <= 24 else None
    if key is None:
        return None
    day = on or local_today()
    rows = _active_rows(session, [key[0]], requester_department, purpose, day)
    if not rows:
        return None
    newest = max(rows, key=lambda row: row.id)
    consent = session.get(Consent, newest.id)
    return None if consent is None else _read(consent, person_ref, day)


def consented_classes(
    session: Session,
    *,
    person_ids: Sequence[int],
    requester_department: str,
    purpose: str,
    on: date,
) -> dict[int, frozenset[str]]:
    """``{person id: field classes}`` the persons' active consents cover for a requester and
    purpose on a day (persons without any are absent): one indexed query for a whole page."""
    covered: dict[int, set[str]] = {}
    for row in _active_rows(session, person_ids, requester_department, purpose, on):
        covered.setdefault(row.person_id, set()).update(row.field_classes or ())
    return {person_id: frozenset(classes) for person_id, classes in covered.items()}


def consents_of_person(
    session: Session, actor: Actor, *, person_ref: str, on: date | None = None
) -> list[ConsentRead]:
    """Every consent of a person, newest first, with its effective status on ``on``."""
    person_id = _person(session, actor, person_ref)
    day = on or local_today()
    return [_read(consent, person_ref, day) for consent in _consents_of(session, person_id)]


# ----------------------------------------------------------------------------- queries

# SQLite allows 32,766 bound parameters; a page of a list is at most 1,000 persons.
_CHUNK = 5_000


def _active_rows(
    session: Session,
    person_ids: Sequence[int],
    requester_department: str,
    purpose: str,
    on: date,
) -> list[Row[int, int, list[str]]]:
    rows: list[Row[int, int, list[str]]] = []
    ids = list(dict.fromkeys(person_ids))
    for start in range(0, len(ids), _CHUNK):
        statement = select(Consent.id, Consent.person_id, Consent.field_classes).where(
            Consent.person_id.in_(ids[start : start + _CHUNK]),
            Consent.requester_department == requester_department,
            Consent.purpose == purpose,
            Consent.status == ConsentStatus.ACTIVE,
            and_(
                Consent.valid_from <= on,
                or_(Consent.valid_until.is_(None), Consent.valid_until >= on),
            ),
        )
        rows.extend(session.execute(statement).all())
    return rows


def _consents_of(session: Session, person_id: int) -> list[Consent]:
    statement = select(Consent).where(Consent.person_id == person_id).order_by(Consent.id.desc())
    return list(session.scalars(statement))
