"""The access log's rules: append, sequence, checkpoint, prove and verify."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from citygrid.audit import merkle
from citygrid.audit import repository as repo
from citygrid.audit.signing import SigningKey, checkpoint_note, verify_note
from citygrid.kit.actor import Actor
from citygrid.kit.errors import Conflict, Forbidden, NotFound, ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.models import utcnow

ALLOWED = "allowed"
DENIED = "denied"
NOT_YET_CHECKPOINTED = "not_yet_checkpointed"
# Entries that commit later than this after a newer checkpoint count as inserted behind the
# log's back (a legitimate writer's transaction is far shorter).
STRAY_GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class AccessRecord:
    """What one access to personal data was: the content of an audit entry."""

    actor: str
    role: str
    action: str
    outcome: str
    department: str | None = None
    scope: tuple[str, ...] = ()
    purpose: str | None = None
    subjects: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    request_id: str | None = None
    client_address: str | None = None
    detail: dict[str, Any] | None = None


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything in the log is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def canonical_bytes(values: dict[str, Any]) -> bytes:
    """The canonical encoding of an entry that its leaf hash covers (sorted-key compact JSON)."""
    document = {
        "created_at": _utc(values["created_at"]).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": values["actor"],
        "role": values["role"],
        "department": values["department"],
        "scope": list(values["scope"]),
        "purpose": values["purpose"],
        "action": values["action"],
        "outcome": values["outcome"],
        "subjects": list(values["subjects"]),
        "fields": list(values["fields"]),
        "request_id": values["request_id"],
        "client_address": values["client_address"],
        "detail": values["detail"],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _row_values(record: AccessRecord, created_at: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {
        "created_at": created_at,
        "actor": record.actor,
        "role": record.role,
        "department": record.department,
        "scope": list(record.scope),
        "purpose": record.purpose,
        "action": record.action,
        "outcome": record.outcome,
        "subjects": list(record.subjects),
        "fields": list(record.fields),
        "request_id": record.request_id,
        "client_address": record.client_address,
        "detail": record.detail,
    }
    values["leaf_hash"] = merkle.leaf_hash(canonical_bytes(values))
    return values


def append(session: Session, record: AccessRecord) -> int:
    """Append one entry in the caller's transaction; returns its id."""
    return repo.insert_entry(session, _row_values(record, utcnow()))


def append_many(session: Session, records: Sequence[AccessRecord]) -> None:
    """Append entries in the caller's transaction (one executemany)."""
    now = utcnow()
    repo.insert_entries(session, [_row_values(record, now) for record in records])


def record_for(actor: Actor, **values: Any) -> AccessRecord:
    """An access record with the actor's name, role, department and scope filled in."""
    return AccessRecord(
        actor=actor.name,
        role=actor.role,
        department=actor.department,
        scope=tuple(actor.scopes),
        **values,
    )


def sequence(session: Session, *, limit: int = 100_000, recent_only: bool = False) -> int:
    """Give unsequenced entries their tree positions (one sequencer at a time); returns how many.

    ``recent_only`` looks only at entries appended since (or up to ``STRAY_GRACE`` before) the
    last sequenced one: a cheap periodic tick. Without it the whole log is searched.
    """
    repo.lock_sequencer(session)
    pending = repo.unsequenced(session, limit, window=STRAY_GRACE if recent_only else None)
    if not pending:
        return 0
    first = repo.tree_size(session)
    entry_ids = [int(row[0]) for row in pending]
    hashes = [bytes(row[1]) for row in pending]
    repo.insert_leaves(
        session,
        [
            {"position": first + offset, "entry_id": entry_id, "leaf_hash": leaf}
            for offset, (entry_id, leaf) in enumerate(zip(entry_ids, hashes, strict=True))
        ],
    )
    # The per-person index of the citizen's view is built here, off the request's hot path.
    repo.insert_subjects(
        session,
        [
            {"entry_id": row[0], "subject": subject}
            for row in pending
            for subject in dict.fromkeys(row[2])
        ],
    )
    frontier_keys = _frontier_keys(first)
    frontier = repo.nodes(session, frontier_keys) if frontier_keys else {}
    new_nodes = merkle.perfect_nodes(first, hashes, lambda level, index: frontier[(level, index)])
    repo.insert_nodes(
        session,
        [
            {"level": level, "node_index": index, "hash": digest}
            for level, index, digest in new_nodes
        ],
    )
    session.flush()
    return len(pending)


def _frontier_keys(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees that make up a tree of ``size`` leaves (its compact range)."""
    keys = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size & (1 << level):
            keys.append((level, start >> level))
            start += 1 << level
    return keys


def _db_nodes(session: Session) -> merkle.NodeSource:
    cache: dict[tuple[int, int], bytes] = {}

    def lookup(level: int, index: int) -> bytes:
        key = (level, index)
        if key not in cache:
            cache.update(repo.nodes(session, [key]))
        return cache[key]

    return lookup


def current_root(session: Session) -> tuple[int, bytes]:
    """Size and root hash of the sequenced tree, from stored nodes."""
    size = repo.tree_size(session)
    if size == 0:
        return 0, merkle.EMPTY_ROOT
    return size, merkle.subtree_hash(0, size, _db_nodes(session))


@dataclass(frozen=True)
class CheckpointRead:
    """A signed tree head as published."""

    id: int
    tree_size: int
    root_hash: str
    created_at: datetime
    key_id: str
    note: str
    signature: str


def _checkpoint_read(checkpoint: Any) -> CheckpointRead:
    return CheckpointRead(
        id=checkpoint.id,
        tree_size=checkpoint.tree_size,
        root_hash=base64.b64encode(checkpoint.root_hash).decode(),
        created_at=_utc(checkpoint.created_at),
        key_id=checkpoint.key_id,
        note=checkpoint.note,
        signature=base64.b64encode(checkpoint.signature).decode(),
    )


def checkpoint(
    session: Session, key: SigningKey, *, origin: str, recent_only: bool = False
) -> CheckpointRead | None:
    """Sequence pending entries and sign a new tree head if the tree grew; None otherwise."""
    while sequence(session, recent_only=recent_only):
        pass
    size, root = current_root(session)
    latest = repo.latest_checkpoint(session)
    if size == 0 or (latest is not None and latest.tree_size >= size):
        return None
    created_at = utcnow()
    note = checkpoint_note(origin, size, root, created_at)
    stored = repo.add_checkpoint(
        session,
        {
            "tree_size": size,
            "root_hash": root,
            "created_at": created_at,
            "key_id": key.key_id,
            "note": note,
            "signature": key.sign(note.encode()),
        },
    )
    return _checkpoint_read(stored)


def latest_checkpoint(session: Session) -> CheckpointRead | None:
    """The newest signed tree head."""
    latest = repo.latest_checkpoint(session)
    return _checkpoint_read(latest) if latest is not None else None


def list_checkpoints(session: Session) -> list[CheckpointRead]:
    """Every signed tree head, oldest first."""
    return [_checkpoint_read(c) for c in repo.checkpoints(session)]


@dataclass(frozen=True)
class InclusionProof:
    """Proof that an entry is in the log, against a signed checkpoint."""

    entry_id: int
    leaf_index: int
    tree_size: int
    leaf_hash: str
    canonical_entry: str
    audit_path: list[str]
    checkpoint: CheckpointRead


def inclusion_proof(session: Session, *, entry_id: int) -> InclusionProof:
    """The entry's leaf, its audit path and the latest checkpoint that covers it."""
    row = repo.entry(session, entry_id)
    if row is None:
        raise NotFound(_("No such audit entry."))
    leaf = repo.leaf_of_entry(session, entry_id)
    latest = repo.latest_checkpoint(session)
    if leaf is None or latest is None or latest.tree_size <= leaf.position:
        raise Conflict(
            _("The entry is not in a signed checkpoint yet; try again in a few seconds."),
            code=NOT_YET_CHECKPOINTED,
        )
    path = merkle.inclusion_proof(leaf.position, latest.tree_size, _db_nodes(session))
    return InclusionProof(
        entry_id=entry_id,
        leaf_index=leaf.position,
        tree_size=latest.tree_size,
        leaf_hash=base64.b64encode(leaf.leaf_hash).decode(),
        canonical_entry=canonical_bytes(row._asdict()).decode(),
        audit_path=[base64.b64encode(h).decode() for h in path],
        checkpoint=_checkpoint_read(latest),
    )


@dataclass
class VerifyReport:
    """The outcome of ``verify``: what was checked and the first problem found, if any."""

    entries_checked: int = 0
    checkpoints_checked: int = 0
    tree_size: int = 0
    problem: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was found wrong."""
        return self.problem is None


def verify(session: Session, *, public_keys: Iterable[bytes]) -> VerifyReport:
    """Recompute every leaf and root; check every signature; name the first tampered entry."""
    report = VerifyReport()
    keys = {_key_id(k): k for k in public_keys}
    cps = repo.checkpoints(session)
    for cp in cps:
        public = keys.get(cp.key_id)
        if public is None or not verify_note(public, cp.note, cp.signature):
            report.problem = {
                "kind": "bad_signature",
                "checkpoint": cp.id,
                "reason": "checkpoint signature does not verify with the published key",
            }
            return report
        lines = cp.note.split("\n")
        if lines[1] != str(cp.tree_size) or lines[2] != base64.b64encode(cp.root_hash).decode():
            report.problem = {
                "kind": "bad_checkpoint",
                "checkpoint": cp.id,
                "reason": "stored size or root differs from the signed note",
            }
            return report
        report.checkpoints_checked += 1
    pending_checks = iter(cps)
    next_cp = next(pending_checks, None)
    previous_size = 0

    stack: list[tuple[int, bytes]] = []
    expected = 0
    for row in repo.sequenced_entries(session):
        values = row._asdict()
        position = values["position"]
        if position != expected:
            report.problem = {
                "kind": "removed",
                "position": expected,
                "reason": "a tree position is missing: an entry was removed",
            }
            return report
        if values["id"] is None:
            report.problem = {
                "kind": "removed",
                "position": position,
                "entry_id": values["entry_id"],
                "reason": "the entry at this position was deleted",
            }
            return report
        digest = merkle.leaf_hash(canonical_bytes(values))
        if digest != bytes(values["tree_hash"]) or digest != bytes(values["leaf_hash"]):
            report.problem = {
                "kind": "altered",
                "position": position,
                "entry_id": values["id"],
                "reason": "the entry's content no longer matches its hash",
            }
            return report
        size, node = 1, digest
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, node = left_size + size, merkle.node_hash(left, node)
        stack.append((size, node))
        expected += 1
        report.entries_checked += 1
        while next_cp is not None and next_cp.tree_size == expected:
            if _fold(stack) != bytes(next_cp.root_hash):
                report.problem = {
                    "kind": "root_mismatch",
                    "checkpoint": next_cp.id,
                    "positions": [previous_size, next_cp.tree_size - 1],
                    "reason": "the log differs from its signed checkpoint within these positions",
                }
                return report
            previous_size = next_cp.tree_size
            next_cp = next(pending_checks, None)
    report.tree_size = expected
    if next_cp is not None:
        report.problem = {
            "kind": "removed",
            "checkpoint": next_cp.id,
            "position": expected,
            "reason": "a signed checkpoint covers entries that are no longer in the log",
        }
        return report
    if cps:
        cutoff = _utc(cps[-1].created_at) - STRAY_GRACE
        strays = repo.stray_entries(session, cutoff)
        if strays:
            report.problem = {
                "kind": "inserted",
                "entry_id": strays[0].id,
                "reason": "the entry is older than a signed checkpoint but not in the log",
            }
    return report


def _fold(stack: list[tuple[int, bytes]]) -> bytes:
    digest = stack[-1][1]
    for _size, left in reversed(stack[:-1]):
        digest = merkle.node_hash(left, digest)
    return digest


def _key_id(public_key: bytes) -> str:
    from citygrid.audit.signing import key_id

    return key_id(public_key)


# ============================================================================ reviewing the log
# Reading the log is itself an access to personal data (who looked at whom): every search,
# proof and display is appended as an entry of purpose ``audit-review``; a refusal too.

AUDIT_PURPOSE = "audit-review"
ACTION_SEARCH = "audit_search"
ACTION_PROOF = "audit_proof"
ACTION_SHOW = "audit_show"
ACTION_VERIFY = "audit_verify"

AUDITOR = "auditor"
ADMIN = "admin"
# Who may do what. Reviewing who saw whom is the auditor's (and the data protection officer's)
# alone; checking the log's integrity is also the administrator's. In-process callers (the
# CLI, whose user already holds the database) have kind "system".
ALLOWED_ROLES: dict[str, frozenset[str]] = {
    ACTION_SEARCH: frozenset({AUDITOR}),
    ACTION_SHOW: frozenset({AUDITOR}),
    ACTION_PROOF: frozenset({AUDITOR, ADMIN}),
    ACTION_VERIFY: frozenset({AUDITOR, ADMIN}),
}
MAX_PAGE = 500


class AuditAccessDenied(Forbidden):
    """The caller's role may not do this with the log. Its denied entry has been appended:
    commit before answering."""


def may(actor: Actor, action: str) -> bool:
    """True when the actor may perform ``action`` on the log."""
    return actor.kind == "system" or actor.role in ALLOWED_ROLES[action]


def authorise(session: Session, actor: Actor, *, action: str) -> None:
    """Raise AuditAccessDenied (after logging the refusal) unless the actor may do ``action``."""
    if may(actor, action):
        return
    append(
        session,
        record_for(
            actor,
            action=action,
            outcome=DENIED,
            purpose=AUDIT_PURPOSE,
            request_id=actor.request_id,
            client_address=actor.client_address,
            detail={"reason": "role"},
        ),
    )
    session.flush()
    raise AuditAccessDenied(_("Only auditors may review the access log."))


def _review(
    session: Session,
    actor: Actor,
    *,
    action: str,
    subjects: Sequence[str] = (),
    detail: dict[str, Any] | None = None,
) -> None:
    append(
        session,
        record_for(
            actor,
            action=action,
            outcome=ALLOWED,
            purpose=AUDIT_PURPOSE,
            subjects=tuple(dict.fromkeys(subjects)),
            request_id=actor.request_id,
            client_address=actor.client_address,
            detail=detail,
        ),
    )


@dataclass(frozen=True)
class EntryRead:
    """An entry of the log as an auditor sees it."""

    id: int
    created_at: datetime
    actor: str
    role: str
    department: str | None
    scope: list[str]
    purpose: str | None
    action: str
    outcome: str
    subjects: list[str]
    fields: list[str]
    request_id: str | None
    client_address: str | None
    detail: dict[str, Any] | None
    leaf_hash: str
    position: int | None  # None until the sequencer has placed it in the tree


def _entry_read(row: Any, position: int | None) -> EntryRead:
    return EntryRead(
        id=row.id,
        created_at=_utc(row.created_at),
        actor=row.actor,
        role=row.role,
        department=row.department,
        scope=list(row.scope),
        purpose=row.purpose,
        action=row.action,
        outcome=row.outcome,
        subjects=list(row.subjects),
        fields=list(row.fields),
        request_id=row.request_id,
        client_address=row.client_address,
        detail=row.detail,
        leaf_hash=base64.b64encode(row.leaf_hash).decode(),
        position=position,
    )


@dataclass(frozen=True)
class EntryFilters:
    """What an auditor searches the log by; None matches everything."""

    actor: str | None = None
    subject: str | None = None  # a person's opaque ref
    purpose: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def as_detail(self) -> dict[str, Any]:
        """The filters that were set, as JSON for the search's own audit entry."""
        values = {
            "actor": self.actor,
            "subject": self.subject,
            "purpose": self.purpose,
            "since": _utc(self.since).isoformat() if self.since else None,
            "until": _utc(self.until).isoformat() if self.until else None,
        }
        return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class EntryPage:
    """One page of a search, newest first; ``next_before_id`` continues it (None: the end)."""

    items: list[EntryRead]
    next_before_id: int | None
    limit: int


def search_entries(
    session: Session,
    actor: Actor,
    *,
    filters: EntryFilters,
    limit: int = 50,
    before_id: int | None = None,
) -> EntryPage:
    """Entries matching ``filters``, newest first, for an auditor; the search is logged."""
    authorise(session, actor, action=ACTION_SEARCH)
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed.one("limit", _("must be between 1 and 500"))
    if filters.since and filters.until and _utc(filters.until) <= _utc(filters.since):
        raise ValidationFailed.one("until", _("must be later than since"))
    rows = repo.search(
        session,
        actor=filters.actor,
        subject=filters.subject,
        purpose=filters.purpose,
        since=_utc(filters.since) if filters.since else None,
        until=_utc(filters.until) if filters.until else None,
        limit=limit + 1,
        before_id=before_id,
    )
    items = [_entry_read(row, row.position) for row in rows[:limit]]
    next_before_id = items[-1].id if len(rows) > limit else None
    # The person searched for is a subject; the persons in the results are not (a grid's list
    # names hundreds): the filters and the ids shown say exactly what was seen.
    _review(
        session,
        actor,
        action=ACTION_SEARCH,
        subjects=[filters.subject] if filters.subject else [],
        detail={
            "filters": filters.as_detail(),
            "before_id": before_id,
            "results": len(items),
            "entry_ids": [items[-1].id, items[0].id] if items else [],
        },
    )
    session.flush()
    return EntryPage(items=items, next_before_id=next_before_id, limit=limit)


def show_entry(session: Session, actor: Actor, *, entry_id: int) -> EntryRead:
    """One entry with its tree position, for an auditor; the look is logged."""
    authorise(session, actor, action=ACTION_SHOW)
    row = repo.entry(session, entry_id)
    if row is None:
        raise NotFound(_("No such audit entry."))
    leaf = repo.leaf_of_entry(session, entry_id)
    entry = _entry_read(row, leaf.position if leaf is not None else None)
    _review(
        session, actor, action=ACTION_SHOW, subjects=entry.subjects, detail={"entry_id": entry_id}
    )
    session.flush()
    return entry


def proof_for(session: Session, actor: Actor, *, entry_id: int) -> InclusionProof:
    """``inclusion_proof`` for an auditor or administrator; the request is logged."""
    authorise(session, actor, action=ACTION_PROOF)
    proof = inclusion_proof(session, entry_id=entry_id)
    subjects = json.loads(proof.canonical_entry)["subjects"]
    _review(session, actor, action=ACTION_PROOF, subjects=subjects, detail={"entry_id": entry_id})
    session.flush()
    return proof


def checkpoints_page(
    session: Session, *, before_id: int | None = None, limit: int = 50
) -> tuple[list[CheckpointRead], int | None]:
    """Signed tree heads newest first, and the ``before_id`` of the next page (None: the end)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed.one("limit", _("must be between 1 and 500"))
    found = repo.checkpoints_page(session, before_id=before_id, limit=limit + 1)
    items = [_checkpoint_read(cp) for cp in found[:limit]]
    return items, (items[-1].id if len(found) > limit else None)


def signature_status(checkpoint: CheckpointRead, public_keys: Iterable[bytes]) -> str:
    """``valid``, ``invalid``, or ``unknown_key`` (no published key has its key id)."""
    keys = {_key_id(key): key for key in public_keys}
    public = keys.get(checkpoint.key_id)
    if public is None:
        return "unknown_key"
    signed = verify_note(public, checkpoint.note, base64.b64decode(checkpoint.signature))
    return "valid" if signed else "invalid"


def tree_size(session: Session) -> int:
    """How many entries the sequencer has placed in the tree."""
    return repo.tree_size(session)
