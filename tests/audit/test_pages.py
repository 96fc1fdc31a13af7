"""The auditor's pages, used through a signed-in browser session."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from citygrid.audit import service as audit
from citygrid.audit.models import AuditEntry
from citygrid.audit.signing import SigningKey
from citygrid.kit.settings import Settings
from tests.access.auth_factories import BROWSER, csrf_in, make_account, sign_in
from tests.audit.conftest import DISTRICT, access_record

# A browser that reads English (the pages' words are asserted in English).
ENGLISH = {**BROWSER, "Accept-Language": "en"}


def signed_in(
    client: TestClient, session: Session, settings: Settings, username: str, role: str
) -> TestClient:
    scopes = ("440104001001002",) if role == "grid_worker" else (DISTRICT,)
    make_account(session, settings, username, role=role, scopes=scopes)
    session.flush()
    sign_in(client, username)
    return client


def searches(session: Session) -> list[AuditEntry]:
    stmt = select(AuditEntry).where(AuditEntry.action == "audit_search").order_by(AuditEntry.id)
    return list(session.scalars(stmt))


def test_an_auditor_searches_the_log_by_person(
    client: TestClient, city: Session, settings: Settings, signing_key: SigningKey
) -> None:
    signed_in(client, city, settings, "auditor1", "auditor")
    for n in range(3):
        audit.append(city, access_record(n))
    audit.checkpoint(city, signing_key, origin="citygrid/audit")

    bare = client.get("/audit", headers=ENGLISH)
    found = client.get("/audit", params={"subject": "ref0001", "actor": ""}, headers=ENGLISH)

    assert bare.status_code == 200
    assert 'name="subject"' in bare.text
    assert 'name="name"' not in bare.text and 'name="id_number"' not in bare.text
    assert "data-entry=" not in bare.text
    assert 'href="/audit" aria-current="page">Access log</a>' in bare.text  # in the menu
    assert found.status_code == 200
    assert found.text.count("data-entry=") == 2
    assert 'href="/api/v1/audit/entries/' in found.text  # proofs, once checkpointed
    assert found.headers["cache-control"] == "no-store"
    [search] = searches(city)  # the bare visit searched nothing, so logged nothing
    assert (search.actor, search.subjects, search.purpose) == (
        "auditor1",
        ["ref0001"],
        "audit-review",
    )


def test_results_come_a_page_at_a_time(
    client: TestClient, city: Session, settings: Settings
) -> None:
    signed_in(client, city, settings, "auditor1", "auditor")
    ids = [audit.append(city, access_record(n, actor="busy")) for n in range(55)]

    first = client.get("/audit", params={"actor": "busy"}, headers=ENGLISH)
    older = client.get("/audit", params={"actor": "busy", "before_id": ids[5]}, headers=ENGLISH)

    assert first.text.count("data-entry=") == 50
    assert f'href="/audit?actor=busy&amp;before_id={ids[5]}"' in first.text
    assert older.text.count("data-entry=") == 5
    assert 'rel="next"' not in older.text
    assert "Newest entries" in older.text


def test_a_bad_day_is_refused_naming_the_field(
    client: TestClient, city: Session, settings: Settings
) -> None:
    signed_in(client, city, settings, "auditor1", "auditor")

    response = client.get("/audit", params={"since": "2026-13-01"}, headers=ENGLISH)
    backwards = client.get(
        "/audit", params={"since": "2026-02-01", "until": "2026-01-01"}, headers=ENGLISH
    )

    assert response.status_code == 422
    assert '<span class="code">since</span>' in response.text
    assert 'id="f-since" name="since" type="date" value="2026-13-01" aria-invalid="true"' in (
        response.text
    )
    assert backwards.status_code == 422
    assert '<span class="code">until</span>' in backwards.text
    assert searches(city) == []


def test_checkpoints_show_their_signature_and_verify_runs_with_the_forms_token(
    client: TestClient, city: Session, settings: Settings, signing_key: SigningKey
) -> None:
    signed_in(client, city, settings, "auditor1", "auditor")
    for n in range(4):
        audit.append(city, access_record(n))
        audit.checkpoint(city, signing_key, origin="citygrid/audit")

    page = client.get("/audit/checkpoints", headers=ENGLISH)
    verified = client.post(
        "/audit/verify", data={"csrf_token": csrf_in(page.text)}, headers=ENGLISH
    )
    forged = client.post("/audit/verify", data={}, headers=ENGLISH)

    assert page.status_code == 200
    assert page.text.count('data-signature="valid"') == 4
    assert verified.status_code == 200, verified.text
    assert 'id="verify-report" data-ok="true"' in verified.text
    assert "4 entries and 4 checkpoints checked" in verified.text
    assert forged.status_code == 403


def test_verify_on_the_page_names_the_edited_entry(
    client: TestClient, city: Session, settings: Settings, signing_key: SigningKey
) -> None:
    signed_in(client, city, settings, "auditor1", "auditor")
    ids = [audit.append(city, access_record(n)) for n in range(6)]
    audit.checkpoint(city, signing_key, origin="citygrid/audit")
    if city.get_bind().dialect.name == "postgresql":
        city.execute(text("DROP TRIGGER audit_entries_append_only ON audit_entries"))
    else:
        city.execute(text("DROP TRIGGER audit_entries_no_update"))
    city.execute(text("UPDATE audit_entries SET actor = 'nobody' WHERE id = :id"), {"id": ids[4]})

    page = client.get("/audit/checkpoints", headers=ENGLISH)
    report = client.post("/audit/verify", data={"csrf_token": csrf_in(page.text)}, headers=ENGLISH)

    assert 'data-ok="false"' in report.text
    assert f"#{ids[4]}" in report.text
    assert "An entry was altered" in report.text


def test_an_administrator_checks_integrity_but_does_not_review_accesses(
    client: TestClient, city: Session, settings: Settings
) -> None:
    signed_in(client, city, settings, "admin1", "admin")

    checkpoints = client.get("/audit/checkpoints", headers=ENGLISH)
    search = client.get("/audit", params={"actor": "x"}, headers=ENGLISH)

    assert checkpoints.status_code == 200
    assert 'href="/audit"' not in checkpoints.text  # no search tab
    assert search.status_code == 403
    [denied] = searches(city)
    assert (denied.actor, denied.outcome) == ("admin1", "denied")


def test_a_grid_worker_is_refused_and_the_attempt_logged(
    client: TestClient, city: Session, settings: Settings
) -> None:
    signed_in(client, city, settings, "worker1", "grid_worker")

    search = client.get("/audit", headers=ENGLISH)
    checkpoints = client.get("/audit/checkpoints", headers=ENGLISH)

    assert (search.status_code, checkpoints.status_code) == (403, 403)
    assert "Only auditors may review the access log." in search.text
    denied = city.scalars(select(AuditEntry).where(AuditEntry.actor == "worker1")).all()
    assert [(e.action, e.outcome) for e in denied] == [
        ("audit_search", "denied"),
        ("audit_verify", "denied"),
    ]


def test_without_signing_in_the_pages_send_you_to_sign_in(client: TestClient) -> None:
    response = client.get("/audit", headers=ENGLISH, follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin?next=")
