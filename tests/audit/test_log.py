"""The access log: appended, sequenced, signed, proven, and tampering is named."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from citygrid.audit import merkle
from citygrid.audit import service as audit
from citygrid.audit.signing import SigningKey
from citygrid.kit.errors import Conflict

ORIGIN = "citygrid-test/audit"


@pytest.fixture
def key() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.generate())


def _record(n: int, outcome: str = audit.ALLOWED) -> audit.AccessRecord:
    return audit.AccessRecord(
        actor=f"officer{n % 3}",
        role="grid_worker",
        action="list_persons",
        outcome=outcome,
        scope=("440104001001002",),
        purpose="patrol-update",
        subjects=(f"ref{n}", f"ref{n + 1}"),
        fields=("identity",),
        request_id=f"req-{n}",
        client_address="127.0.0.1",
    )


def _fill(session: Session, key: SigningKey, count: int, every: int = 7) -> list[int]:
    ids: list[int] = []
    for start in range(0, count, every):
        ids += [audit.append(session, _record(n)) for n in range(start, min(count, start + every))]
        audit.checkpoint(session, key, origin=ORIGIN)
    return ids


def _drop_guards(session: Session) -> None:
    """Play the attacker with database access: remove the append-only triggers."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("DROP TRIGGER audit_entries_append_only ON audit_entries"))
        session.execute(text("DROP TRIGGER audit_leaves_append_only ON audit_leaves"))
    else:
        session.execute(text("DROP TRIGGER audit_entries_no_update"))
        session.execute(text("DROP TRIGGER audit_entries_no_delete"))
        session.execute(text("DROP TRIGGER audit_leaves_no_delete"))


def test_an_untouched_log_verifies(db_session: Session, key: SigningKey) -> None:
    _fill(db_session, key, 40)
    report = audit.verify(db_session, public_keys=[key.public_bytes])
    assert report.ok, report.problem
    assert report.entries_checked == 40
    assert report.tree_size == 40
    assert report.checkpoints_checked == 6


def test_stored_root_matches_rfc6962_over_all_entries(db_session: Session, key: SigningKey) -> None:
    _fill(db_session, key, 37, every=5)
    size, root = audit.current_root(db_session)
    leaves = db_session.execute(text("SELECT leaf_hash FROM audit_leaves ORDER BY position"))
    expected, count = merkle.root_from_leaves(bytes(row[0]) for row in leaves)
    assert (size, root) == (count, expected) == (37, expected)


def test_an_outsider_can_check_an_inclusion_proof(db_session: Session, key: SigningKey) -> None:
    ids = _fill(db_session, key, 25)
    proof = audit.inclusion_proof(db_session, entry_id=ids[11])

    # Only public material from here on: the public key, the note, the entry and the path.
    public = Ed25519PublicKey.from_public_bytes(key.public_bytes)
    public.verify(base64.b64decode(proof.checkpoint.signature), proof.checkpoint.note.encode())
    _origin, size, root_b64, _stamp, _ = proof.checkpoint.note.split("\n")
    leaf = hashlib.sha256(b"\x00" + proof.canonical_entry.encode()).digest()
    assert base64.b64encode(leaf).decode() == proof.leaf_hash
    path = [base64.b64decode(h) for h in proof.audit_path]
    assert merkle.verify_inclusion(
        proof.leaf_index, int(size), leaf, path, base64.b64decode(root_b64)
    )
    assert not merkle.verify_inclusion(
        proof.leaf_index, int(size), merkle.leaf_hash(b"forged"), path, base64.b64decode(root_b64)
    )


def test_a_proof_waits_for_the_next_checkpoint(db_session: Session, key: SigningKey) -> None:
    _fill(db_session, key, 3)
    late = audit.append(db_session, _record(99))
    with pytest.raises(Conflict):
        audit.inclusion_proof(db_session, entry_id=late)


def test_the_database_refuses_to_update_or_delete_entries(
    db_session: Session, key: SigningKey
) -> None:
    ids = _fill(db_session, key, 3)
    with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
        db_session.execute(
            text("UPDATE audit_entries SET actor = 'x' WHERE id = :id"), {"id": ids[0]}
        )
    with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
        db_session.execute(text("DELETE FROM audit_leaves"))


def test_verify_names_an_edited_entry(db_session: Session, key: SigningKey) -> None:
    ids = _fill(db_session, key, 30)
    _drop_guards(db_session)
    db_session.execute(
        text("UPDATE audit_entries SET purpose = 'statistics' WHERE id = :id"), {"id": ids[17]}
    )
    report = audit.verify(db_session, public_keys=[key.public_bytes])
    assert report.problem is not None
    assert report.problem["kind"] == "altered"
    assert report.problem["entry_id"] == ids[17]


def test_verify_names_a_removed_entry(db_session: Session, key: SigningKey) -> None:
    ids = _fill(db_session, key, 30)
    _drop_guards(db_session)
    db_session.execute(text("DELETE FROM audit_entries WHERE id = :id"), {"id": ids[5]})
    report = audit.verify(db_session, public_keys=[key.public_bytes])
    assert report.problem is not None
    assert report.problem["kind"] == "removed"
    assert report.problem["entry_id"] == ids[5]


def test_verify_catches_a_truncated_tree(db_session: Session, key: SigningKey) -> None:
    _fill(db_session, key, 30)
    _drop_guards(db_session)
    db_session.execute(text("DELETE FROM audit_leaves WHERE position >= 28"))
    report = audit.verify(db_session, public_keys=[key.public_bytes])
    assert report.problem is not None
    assert report.problem["kind"] == "removed"


def test_verify_refuses_a_checkpoint_signed_by_another_key(
    db_session: Session, key: SigningKey
) -> None:
    _fill(db_session, key, 5)
    other = SigningKey(Ed25519PrivateKey.generate())
    report = audit.verify(db_session, public_keys=[other.public_bytes])
    assert report.problem is not None
    assert report.problem["kind"] == "bad_signature"


def test_subjects_are_indexed_for_the_citizen_view(db_session: Session, key: SigningKey) -> None:
    _fill(db_session, key, 6)
    rows = audit.repo.search(db_session, subject="ref3")
    assert sorted(row.request_id for row in rows) == ["req-2", "req-3"]
