"""The tasks the reactions create, as the people who must do them see them: the grid worker's
verifications at /my/tasks, civil affairs' allowance reviews at /tasks, each with "done"; the
subject masked, read through the access gateway and logged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.audit.models import AuditEntry
from citygrid.exchange import outbox
from citygrid.exchange.models import Task
from citygrid.kit.actor import Actor
from citygrid.registry.idnumber import make_id_number
from tests.access.auth_factories import (
    BROWSER,
    csrf_in,
    fast_settings,
    make_account,
    request_scoped_app,
    sign_in,
)
from tests.exchange.story import (
    GRID,
    OTHER_GRID,
    PUBLIC_SECURITY,
    event,
    family,
    flat,
    give_allowance,
)

TASKS = "/api/v1/tasks"
GRID_WORKER = Actor(name="zhangsijun", role="grid_worker", scopes=(GRID,))
OTHER_WORKER = Actor(name="worker-other", role="grid_worker", scopes=(OTHER_GRID,))
COMMUNITY = Actor(name="community-official", role="community_official", scopes=(GRID[:12],))
CA_OFFICER = Actor(
    name="ca-officer", role="department_officer", department="civil-affairs", scopes=("440104",)
)
CA_ELSEWHERE = Actor(
    name="ca-haizhu", role="department_officer", department="civil-affairs", scopes=("440105",)
)
AUDITOR = Actor(name="auditor", role="auditor", scopes=("440104",))


def _a_death(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> str:
    """Grandpa, who receives an allowance, dies; the reactions run. Returns his reference."""
    home = family(city)
    give_allowance(city, home.head)
    deliver()
    act_as(PUBLIC_SECURITY)
    answer = client.post("/api/v1/exchange/events", json=event("death", home.head)).json()
    assert answer["applied"] is True
    deliver()
    return str(answer["subject"])


def _told_reads(session: Session) -> list[AuditEntry]:
    statement = select(AuditEntry).where(AuditEntry.action == "list_subjects")
    return list(session.scalars(statement.order_by(AuditEntry.id)))


def test_the_grid_worker_sees_her_grid_s_verification_tasks_masked(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    ref = _a_death(city, act_as, client, deliver)
    act_as(GRID_WORKER)

    response = client.get(TASKS)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    kinds = {item["kind"] for item in body["items"]}
    assert kinds == {"verify_death", "household_head_needed"}
    assert body["purpose"] == "life-event-notification"
    [death] = [item for item in body["items"] if item["kind"] == "verify_death"]
    assert death["subject"] == ref and death["grid_code"] == GRID
    assert death["person"]["name"] == "王**"
    assert death["person"]["status"] == "deceased"
    assert death["person"]["birth_date"] == "1985"
    assert death["can_complete"] is True and death["state"] == "open"
    assert "id_number" not in death["person"]
    # The look at the subjects is in the access log, for its purpose.
    [entry] = _told_reads(city)
    assert entry.actor == "zhangsijun" and entry.purpose == "life-event-notification"
    assert entry.subjects == [ref]


def test_civil_affairs_sees_its_review_task_and_no_grid_task(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    ref = _a_death(city, act_as, client, deliver)

    act_as(CA_OFFICER)
    mine = client.get(TASKS).json()["items"]
    act_as(CA_ELSEWHERE)
    elsewhere = client.get(TASKS).json()["items"]
    act_as(OTHER_WORKER)
    other_grid = client.get(TASKS).json()["items"]

    assert [(item["kind"], item["assignee"]) for item in mine] == [
        ("allowance_review", "civil-affairs")
    ]
    assert mine[0]["subject"] == ref and mine[0]["person"]["name"] == "王**"
    assert elsewhere == []  # another district's officer: not in her territory
    assert other_grid == []


def test_a_task_is_marked_done_once_by_its_assignee(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    _a_death(city, act_as, client, deliver)
    act_as(GRID_WORKER)
    [death] = [item for item in client.get(TASKS).json()["items"] if item["kind"] == "verify_death"]
    path = f"{TASKS}/{death['id']}/complete"

    act_as(OTHER_WORKER)
    assert client.post(path).status_code == 404
    act_as(COMMUNITY)
    followed = client.get(TASKS).json()["items"]
    assert death["id"] in [item["id"] for item in followed]
    assert client.post(path).status_code == 403
    act_as(CA_OFFICER)
    assert client.post(path).status_code == 404

    act_as(GRID_WORKER)
    done = client.post(path)
    again = client.post(path)

    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["done_by"]) == ("done", "zhangsijun")
    assert again.status_code == 409
    assert again.json()["error"]["details"][0]["field"] == "task_id"
    still_open = client.get(TASKS).json()["items"]
    assert death["id"] not in [item["id"] for item in still_open]
    finished = client.get(TASKS, params={"state": "done"}).json()["items"]
    assert [item["id"] for item in finished] == [death["id"]]
    assert finished[0]["can_complete"] is False


def test_bad_requests_are_refused_naming_the_field(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    act_as(GRID_WORKER)
    for params, field in (({"state": "later"}, "state"), ({"limit": 0}, "limit")):
        response = client.get(TASKS, params=params)
        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["field"] == field
    assert client.post(f"{TASKS}/0/complete").status_code == 422
    assert client.post(f"{TASKS}/999999/complete").status_code == 404
    act_as(AUDITOR)
    assert client.get(TASKS).status_code == 403


def test_a_birth_gives_the_grid_worker_a_verification_task(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)
    child_number = make_id_number("440104", date(2026, 3, 10), 26)
    client.post(
        "/api/v1/exchange/events",
        json=event(
            "birth",
            child_number,
            occurred_at="2026-03-10T04:12:00+08:00",
            name="王小雨",
            ethnicity="汉族",
            parent_id_number=home.spouse.id_number,
        ),
    )
    deliver()
    act_as(GRID_WORKER)

    [task] = client.get(TASKS).json()["items"]

    assert task["kind"] == "verify_birth" and task["person"]["name"] == "王**"


def test_the_grid_worker_s_page_lists_and_completes_her_tasks(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    _a_death(city, act_as, client, deliver)
    act_as(GRID_WORKER)
    client.headers.update(BROWSER)

    page = client.get("/my/tasks")

    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "Verify a death" in page.text and "Record a new head of household" in page.text
    assert "王**" in page.text and "王小明" not in page.text
    [task_id] = [task.id for task in city.scalars(select(Task).where(Task.kind == "verify_death"))]
    assert f'action="/tasks/{task_id}/complete"' in page.text

    done = client.post(
        f"/tasks/{task_id}/complete", data={"back": "/my/tasks"}, follow_redirects=False
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/my/tasks?done={task_id}"
    after = client.get(done.headers["location"])
    assert f"Task {task_id} is marked done" in after.text
    assert f'action="/tasks/{task_id}/complete"' not in after.text
    # A second click (another tab) meets the conflict page; nothing changes.
    second = client.post(f"/tasks/{task_id}/complete", data={"back": "/my/tasks"})
    assert second.status_code == 409


def test_civil_affairs_page_shows_the_review_and_a_grid_worker_is_sent_to_hers(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    _a_death(city, act_as, client, deliver)
    client.headers.update(BROWSER)
    act_as(CA_OFFICER)

    page = client.get("/tasks")
    redirected = client.get("/my/tasks", follow_redirects=False)

    assert page.status_code == 200
    assert "Review a suspended subsistence allowance" in page.text
    assert "Verify a death" not in page.text
    assert redirected.status_code == 303 and redirected.headers["location"] == "/tasks"


def test_the_done_form_needs_its_csrf_token(
    database_url: str,
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    _a_death(city, act_as, client, deliver)
    settings = fast_settings(database_url)
    make_account(city, settings, "zhangsijun", scopes=(GRID,))
    app = request_scoped_app(settings, city)
    [task] = city.scalars(select(Task).where(Task.kind == "verify_death")).all()
    with TestClient(app, headers=BROWSER) as browser:
        sign_in(browser, "zhangsijun")
        page = browser.get("/my/tasks")
        token = csrf_in(page.text)

        refused = browser.post(f"/tasks/{task.id}/complete", data={"back": "/my/tasks"})
        city.refresh(task)
        assert refused.status_code == 403 and task.state.value == "open"

        accepted = browser.post(
            f"/tasks/{task.id}/complete",
            data={"back": "/my/tasks", "csrf_token": token},
            follow_redirects=False,
        )
        assert accepted.status_code == 303
        city.refresh(task)
        assert (task.state.value, task.done_by) == ("done", "zhangsijun")


def test_a_resident_who_moved_away_is_not_shown_to_the_old_grid_s_worker(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    home = family(city)
    new_flat = flat(city, OTHER_GRID)
    act_as(PUBLIC_SECURITY)
    client.post("/api/v1/exchange/events", json=event("move_in", home.spouse, unit_id=new_flat.id))
    deliver()

    act_as(GRID_WORKER)
    [old_grid] = client.get(TASKS).json()["items"]
    act_as(OTHER_WORKER)
    [new_grid] = client.get(TASKS).json()["items"]

    # Both grids verify the move; only the grid she lives in now sees who she is.
    assert (old_grid["kind"], old_grid["grid_code"]) == ("verify_move_in", GRID)
    assert old_grid["subject"] == home.spouse.ref and old_grid["person"] is None
    assert (new_grid["kind"], new_grid["grid_code"]) == ("verify_move_in", OTHER_GRID)
    assert new_grid["person"]["name"] == "李**"
    reads = _told_reads(city)
    assert [entry.actor for entry in reads] == ["worker-other"]
