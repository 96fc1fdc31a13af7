"""The access log over HTTP: what an outsider may fetch, and what only an auditor may."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.audit import service as audit
from citygrid.audit.models import AuditEntry
from citygrid.audit.signing import SigningKey, generate_seed_b64, signing_key_from_seed
from citygrid.kit.settings import Settings
from tests.audit import outsider_verify
from tests.audit.conftest import access_record

ORIGIN = "citygrid/audit"


def _log(session: Session, key: SigningKey, count: int, **kinds: str) -> list[int]:
    """Append ``count`` entries and sign a checkpoint over them; their ids."""
    ids = [audit.append(session, access_record(n, **kinds)) for n in range(count)]
    audit.checkpoint(session, key, origin=ORIGIN)
    return ids


def _entries(session: Session, **where: str) -> list[AuditEntry]:
    conditions = [getattr(AuditEntry, name) == value for name, value in where.items()]
    stmt = select(AuditEntry).where(*conditions).order_by(AuditEntry.id)
    return list(session.scalars(stmt))


# ----------------------------------------------------------------------------- public


def test_anyone_can_fetch_the_public_key(client: TestClient, signing_key: SigningKey) -> None:
    response = client.get("/api/v1/audit/public-key")

    assert response.status_code == 200
    body = response.json()
    assert body["algorithm"] == "Ed25519"
    assert body["key_id"] == signing_key.key_id
    assert base64.b64decode(body["public_key"]) == signing_key.public_bytes
    pem_key = load_pem_public_key(body["pem"].encode())
    assert pem_key.public_bytes_raw() == signing_key.public_bytes  # type: ignore[union-attr]
    assert body["origin"] == ORIGIN
    assert body["retired"] == []


def test_retired_keys_stay_published_after_a_rotation(
    client: TestClient, settings: Settings
) -> None:
    old = signing_key_from_seed(generate_seed_b64())
    settings.audit_retired_public_keys = [base64.b64encode(old.public_bytes).decode()]

    body = client.get("/api/v1/audit/public-key").json()

    assert [key["key_id"] for key in body["retired"]] == [old.key_id]


def test_checkpoints_are_public_newest_first_and_paged(
    client: TestClient, db_session: Session, signing_key: SigningKey
) -> None:
    assert client.get("/api/v1/audit/checkpoints/latest").status_code == 404
    for _ in range(3):
        _log(db_session, signing_key, 2)

    latest = client.get("/api/v1/audit/checkpoints/latest").json()
    first = client.get("/api/v1/audit/checkpoints", params={"limit": 2}).json()
    rest = client.get(
        "/api/v1/audit/checkpoints", params={"limit": 2, "before_id": first["next_before_id"]}
    ).json()

    assert latest["tree_size"] == 6
    assert [cp["tree_size"] for cp in first["items"]] == [6, 4]
    assert [cp["tree_size"] for cp in rest["items"]] == [2]
    assert rest["next_before_id"] is None
    assert latest["note"].startswith(f"{ORIGIN}\n6\n{latest['root_hash']}\n")
    assert client.get("/api/v1/audit/checkpoints", params={"limit": 0}).status_code == 422


# ----------------------------------------------------------------------------- proofs


def test_an_auditors_proof_verifies_with_only_the_public_key(
    client: TestClient, db_session: Session, signing_key: SigningKey, auditor: dict[str, str]
) -> None:
    ids = _log(db_session, signing_key, 11)

    response = client.get(f"/api/v1/audit/entries/{ids[6]}/proof", headers=auditor)

    assert response.status_code == 200, response.text
    proof = response.json()
    published = client.get("/api/v1/audit/public-key").json()
    outcome = outsider_verify.check(proof, base64.b64decode(published["public_key"]), ORIGIN)
    assert outcome.startswith(f"entry {ids[6]} is leaf ")
    assert json.loads(proof["canonical_entry"])["request_id"] == "req-6"
    assert response.headers["cache-control"] == "no-store"


def test_a_forged_proof_does_not_verify(
    client: TestClient, db_session: Session, signing_key: SigningKey, auditor: dict[str, str]
) -> None:
    ids = _log(db_session, signing_key, 5)
    proof = client.get(f"/api/v1/audit/entries/{ids[2]}/proof", headers=auditor).json()
    public_key = signing_key.public_bytes

    edited = json.loads(proof["canonical_entry"]) | {"purpose": "statistics"}
    forged = proof | {"canonical_entry": json.dumps(edited, sort_keys=True)}
    other_key = signing_key_from_seed(generate_seed_b64()).public_bytes

    for bad, key in ((forged, public_key), (proof, other_key)):
        try:
            outsider_verify.check(bad, key)
        except ValueError:
            continue
        raise AssertionError("a forged proof verified")


def test_a_proof_of_an_entry_newer_than_the_checkpoint_says_when_to_retry(
    client: TestClient, db_session: Session, signing_key: SigningKey, auditor: dict[str, str]
) -> None:
    _log(db_session, signing_key, 3)
    late = audit.append(db_session, access_record(99))

    response = client.get(f"/api/v1/audit/entries/{late}/proof", headers=auditor)

    assert response.status_code == 409
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "not_yet_checkpointed"


def test_an_administrator_may_fetch_proofs_too(
    client: TestClient, db_session: Session, signing_key: SigningKey, admin: dict[str, str]
) -> None:
    ids = _log(db_session, signing_key, 2)

    assert client.get(f"/api/v1/audit/entries/{ids[0]}/proof", headers=admin).status_code == 200
    assert client.get("/api/v1/audit/entries/999999/proof", headers=admin).status_code == 404


def test_proofs_are_refused_to_others_and_the_refusal_is_logged(
    client: TestClient, db_session: Session, signing_key: SigningKey, grid_worker: dict[str, str]
) -> None:
    ids = _log(db_session, signing_key, 2)

    anonymous = client.get(f"/api/v1/audit/entries/{ids[0]}/proof")
    refused = client.get(f"/api/v1/audit/entries/{ids[0]}/proof", headers=grid_worker)

    assert anonymous.status_code == 401
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    [denied] = _entries(db_session, action="audit_proof")
    assert (denied.actor, denied.outcome, denied.purpose) == ("worker1", "denied", "audit-review")


def test_reading_a_proof_is_itself_logged(
    client: TestClient, db_session: Session, signing_key: SigningKey, auditor: dict[str, str]
) -> None:
    ids = _log(db_session, signing_key, 3)

    client.get(f"/api/v1/audit/entries/{ids[1]}/proof", headers=auditor)

    [entry] = _entries(db_session, action="audit_proof")
    assert (entry.actor, entry.role, entry.outcome) == ("auditor1", "auditor", "allowed")
    assert entry.purpose == "audit-review"
    assert entry.subjects == ["ref0001", "ref0002"]
    assert entry.detail == {"entry_id": ids[1]}


# ----------------------------------------------------------------------------- search


def test_an_auditor_searches_newest_first_page_by_page(
    client: TestClient, db_session: Session, auditor: dict[str, str]
) -> None:
    ids = [audit.append(db_session, access_record(n)) for n in range(5)]

    first = client.get("/api/v1/audit/entries", params={"limit": 3}, headers=auditor).json()
    rest = client.get(
        "/api/v1/audit/entries",
        params={"limit": 3, "before_id": first["next_before_id"]},
        headers=auditor,
    ).json()

    assert [item["id"] for item in first["items"]] == ids[:1:-1]
    assert [item["id"] for item in rest["items"]] == ids[1::-1]
    assert rest["next_before_id"] is None
    assert first["items"][0]["position"] is None  # not sequenced yet
    assert first["items"][0]["subjects"] == ["ref0004", "ref0005"]


def test_search_by_actor_person_purpose_and_time(
    client: TestClient, db_session: Session, auditor: dict[str, str]
) -> None:
    audit.append(db_session, access_record(1, actor="officer1"))
    audit.append(db_session, access_record(2, actor="officer2", purpose="case-handling"))
    audit.append(db_session, access_record(7, actor="officer2"))
    audit.sequence(db_session)  # the index by person is built by the sequencer

    def search(**params: str) -> list[str]:
        response = client.get("/api/v1/audit/entries", params=params, headers=auditor)
        assert response.status_code == 200, response.text
        return [item["request_id"] for item in response.json()["items"]]

    assert search(actor="officer2") == ["req-7", "req-2"]
    assert search(subject="ref0002") == ["req-2", "req-1"]
    assert search(purpose="case-handling") == ["req-2"]
    assert search(actor="officer1", since="2000-01-01T00:00:00Z") == ["req-1"]
    assert search(actor="officer1", until="2000-01-01T00:00:00+08:00") == []
    assert search(actor="nobody' OR '1'='1") == []


def test_searching_is_itself_logged(
    client: TestClient, db_session: Session, auditor: dict[str, str]
) -> None:
    audit.append(db_session, access_record(1))
    audit.sequence(db_session)

    client.get("/api/v1/audit/entries", params={"subject": "ref0001", "limit": 10}, headers=auditor)

    [entry] = _entries(db_session, action="audit_search")
    assert (entry.actor, entry.outcome, entry.purpose) == ("auditor1", "allowed", "audit-review")
    assert entry.subjects == ["ref0001"]
    assert entry.detail is not None
    assert entry.detail["filters"] == {"subject": "ref0001"}
    assert entry.detail["results"] == 1


def test_only_an_auditor_may_search(
    client: TestClient,
    db_session: Session,
    admin: dict[str, str],
    grid_worker: dict[str, str],
) -> None:
    before = db_session.scalar(select(func.count()).select_from(AuditEntry))

    assert client.get("/api/v1/audit/entries").status_code == 401
    for headers, name in ((admin, "admin1"), (grid_worker, "worker1")):
        response = client.get("/api/v1/audit/entries", headers=headers)
        assert response.status_code == 403
        [denied] = _entries(db_session, action="audit_search", actor=name)
        assert denied.outcome == "denied"
    after = db_session.scalar(select(func.count()).select_from(AuditEntry))
    assert after == (before or 0) + 2


def test_bad_search_input_is_refused_naming_the_field(
    client: TestClient, auditor: dict[str, str]
) -> None:
    def refused(**params: str) -> list[str]:
        response = client.get("/api/v1/audit/entries", params=params, headers=auditor)
        assert response.status_code == 422, response.text
        return [detail["field"] for detail in response.json()["error"]["details"]]

    assert refused(limit="0") == ["limit"]
    assert refused(limit="501") == ["limit"]
    assert refused(since="yesterday") == ["since"]
    assert refused(before_id="-1") == ["before_id"]
    assert refused(subject="x" * 25) == ["subject"]
    assert refused(since="2026-01-02T00:00:00Z", until="2026-01-01T00:00:00Z") == ["until"]
