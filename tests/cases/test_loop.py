"""The seven steps of the loop, over HTTP: the seed's broken pavement tile from Zhang Sijun's
report to the evaluated fix, and every way of taking a step wrongly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.cases.models import Case
from citygrid.kit.actor import Actor
from tests.cases.conftest import (
    DISPATCHER,
    HOUSING,
    NEIGHBOUR,
    STREET_DISPATCHER,
    URBAN,
    ZHANG,
)
from tests.cases.helpers import count_transitions, event_names, tile_report

ActAs = Callable[[Actor], None]


def post(client: TestClient, case_id: str, action: str, **fields: Any) -> Any:
    return client.post(f"/api/v1/cases/{case_id}/transitions", json={"action": action, **fields})


def report_tile(client: TestClient, act_as: ActAs) -> str:
    act_as(ZHANG)
    response = client.post("/api/v1/cases", json=tile_report())
    assert response.status_code == 201, response.text
    case_id: str = response.json()["id"]
    return case_id


def test_the_broken_tile_goes_through_the_whole_loop(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    # Zhang Sijun finds the broken tiles and files them as floor tiles, priority high.
    case_id = report_tile(client, act_as)
    act_as(DISPATCHER)
    case = client.get(f"/api/v1/cases/{case_id}").json()
    assert case["state"] == "reported"
    assert case["category"] == "C0201"
    assert case["department"] == "housing-construction"  # routed by the catalogue
    assert case["grid_code"] == "440104001001002"
    assert (case["community_code"], case["street_code"], case["district_code"]) == (
        "440104001001",
        "440104001",
        "440104",
    )

    # The command centre registers it and dispatches it to housing and construction.
    assert post(client, case_id, "register", note="meets the criterion").status_code == 200
    dispatched = post(client, case_id, "dispatch", department="housing-construction")
    assert dispatched.status_code == 200, dispatched.text
    assert dispatched.json()["state"] == "dispatched"
    assert dispatched.json()["deadline_at"] is not None

    # The department accepts it and reports it fixed.
    act_as(HOUSING)
    assert post(client, case_id, "accept").json()["state"] == "handling"
    handled = post(client, case_id, "feedback", note="three tiles replaced")
    assert handled.json()["state"] == "handled"

    # Zhang Sijun checks on site: one tile still rocks. Back to the department.
    act_as(ZHANG)
    failed = post(client, case_id, "verify", result="fail", note="one tile still loose")
    assert failed.status_code == 200, failed.text
    assert (failed.json()["state"], failed.json()["rework_count"]) == ("handling", 1)

    act_as(HOUSING)
    assert post(client, case_id, "feedback", note="loose tile re-laid").json()["state"] == "handled"

    act_as(ZHANG)
    closed = post(client, case_id, "verify", result="pass", note="all firm")
    assert closed.json()["state"] == "closed"
    assert closed.json()["closed_at"] is not None

    act_as(DISPATCHER)
    evaluated = post(client, case_id, "evaluate", score=4, note="fixed, one rework")
    assert evaluated.status_code == 200, evaluated.text
    body = evaluated.json()
    assert (body["state"], body["satisfaction"], body["rework_count"]) == ("evaluated", 4, 1)

    steps = [
        (step["action"], step["from_state"], step["to_state"], step["actor_role"])
        for step in body["transitions"]
    ]
    assert steps == [
        ("report", None, "reported", "grid_worker"),
        ("register", "reported", "registered", "dispatcher"),
        ("dispatch", "registered", "dispatched", "dispatcher"),
        ("accept", "dispatched", "handling", "department_officer"),
        ("feedback", "handling", "handled", "department_officer"),
        ("verify", "handled", "handling", "grid_worker"),
        ("feedback", "handling", "handled", "department_officer"),
        ("verify", "handled", "closed", "grid_worker"),
        ("evaluate", "closed", "evaluated", "dispatcher"),
    ]
    assert body["transitions"][5]["note"] == "one tile still loose"
    assert body["transitions"][5]["data"] == {"result": "fail"}
    assert body["transitions"][0]["actor_name"] == "zhang.sijun"
    row = city.query(Case).filter_by(ref=case_id).one()
    assert event_names(city, row.id) == ["case.created"] + ["case.changed"] * 8


def test_the_reporter_may_evaluate_her_own_case(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    case_id = report_tile(client, act_as)
    walk_to(client, act_as, case_id, "closed")

    act_as(ZHANG)
    response = post(client, case_id, "evaluate", score=5)

    assert response.status_code == 200
    assert response.json()["satisfaction"] == 5


STEPS: list[tuple[Actor, str, dict[str, Any]]] = [
    (DISPATCHER, "register", {}),
    (DISPATCHER, "dispatch", {}),
    (HOUSING, "accept", {}),
    (HOUSING, "feedback", {"note": "done"}),
    (ZHANG, "verify", {"result": "pass"}),
    (DISPATCHER, "evaluate", {"score": 3}),
]
STATE_AFTER = ["registered", "dispatched", "handling", "handled", "closed", "evaluated"]


def walk_to(client: TestClient, act_as: ActAs, case_id: str, state: str) -> None:
    """Take the loop's steps until the case is in ``state``."""
    if state == "reported":
        return
    for (actor, action, fields), reached in zip(STEPS, STATE_AFTER, strict=True):
        act_as(actor)
        response = post(client, case_id, action, **fields)
        assert response.status_code == 200, response.text
        if reached == state:
            return


@pytest.mark.parametrize(
    ("state", "actor", "action", "fields"),
    [
        ("reported", DISPATCHER, "dispatch", {}),
        ("reported", HOUSING, "accept", {}),
        ("reported", ZHANG, "verify", {"result": "pass"}),
        ("registered", HOUSING, "feedback", {"note": "done"}),
        ("dispatched", DISPATCHER, "register", {}),
        ("handling", ZHANG, "verify", {"result": "pass"}),
        ("handled", DISPATCHER, "evaluate", {"score": 5}),
        ("closed", HOUSING, "feedback", {"note": "again"}),
        ("evaluated", DISPATCHER, "evaluate", {"score": 1}),
    ],
)
def test_a_step_out_of_order_is_409_and_changes_nothing(
    city: Session,
    client: TestClient,
    act_as: ActAs,
    state: str,
    actor: Actor,
    action: str,
    fields: dict[str, Any],
) -> None:
    case_id = report_tile(client, act_as)
    walk_to(client, act_as, case_id, state)
    act_as(DISPATCHER)
    before = client.get(f"/api/v1/cases/{case_id}").json()
    transitions = count_transitions(city)

    act_as(actor)
    response = post(client, case_id, action, **fields)

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "invalid_transition"
    assert state in error["message"] and action in error["message"]
    assert error["details"]["state"] == state
    assert error["details"]["action"] == action
    act_as(DISPATCHER)
    assert client.get(f"/api/v1/cases/{case_id}").json() == before
    assert count_transitions(city) == transitions


@pytest.mark.parametrize(
    ("state", "actor", "action", "fields"),
    [
        ("reported", ZHANG, "register", {}),
        ("reported", HOUSING, "reject", {"note": "not ours"}),
        ("registered", ZHANG, "dispatch", {}),
        ("dispatched", DISPATCHER, "accept", {}),
        ("handling", DISPATCHER, "feedback", {"note": "done"}),
        ("handled", DISPATCHER, "verify", {"result": "pass"}),
        ("handled", HOUSING, "verify", {"result": "pass"}),
        ("closed", HOUSING, "evaluate", {"score": 5}),
        ("closed", NEIGHBOUR, "evaluate", {"score": 5}),
    ],
)
def test_a_step_by_the_wrong_role_is_403_and_changes_nothing(
    city: Session,
    client: TestClient,
    act_as: ActAs,
    state: str,
    actor: Actor,
    action: str,
    fields: dict[str, Any],
) -> None:
    case_id = report_tile(client, act_as)
    walk_to(client, act_as, case_id, state)
    transitions = count_transitions(city)
    if actor is NEIGHBOUR:
        # The neighbour cannot even see the case: 404 (tested below); give her the street.
        actor = Actor(name=NEIGHBOUR.name, role="grid_worker", scopes=("440104001",))

    act_as(actor)
    response = post(client, case_id, action, **fields)

    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"
    assert count_transitions(city) == transitions
    act_as(DISPATCHER)
    assert client.get(f"/api/v1/cases/{case_id}").json()["state"] == state


@pytest.mark.parametrize(
    ("state", "action", "fields"),
    [
        ("dispatched", "accept", {}),
        ("dispatched", "return", {"note": "not ours"}),
        ("handling", "feedback", {"note": "done"}),
    ],
)
def test_another_department_may_not_act_on_the_case(
    city: Session,
    client: TestClient,
    act_as: ActAs,
    state: str,
    action: str,
    fields: dict[str, Any],
) -> None:
    case_id = report_tile(client, act_as)
    walk_to(client, act_as, case_id, state)
    transitions = count_transitions(city)

    act_as(URBAN)
    response = post(client, case_id, action, **fields)

    assert response.status_code == 403
    assert "another department" in response.json()["error"]["message"]
    assert count_transitions(city) == transitions


@pytest.mark.parametrize(
    "outsider",
    [
        STREET_DISPATCHER,
        NEIGHBOUR,
        Actor(
            name="officer.far",
            role="department_officer",
            department="housing-construction",
            scopes=("440104002",),
        ),
        Actor(name="nobody", role="dispatcher", scopes=()),
    ],
)
def test_a_case_outside_the_actor_s_territory_is_not_found(
    city: Session, client: TestClient, act_as: ActAs, outsider: Actor
) -> None:
    case_id = report_tile(client, act_as)
    walk_to(client, act_as, case_id, "handled")
    transitions = count_transitions(city)

    act_as(outsider)
    read = client.get(f"/api/v1/cases/{case_id}")
    step = post(client, case_id, "verify", result="pass")
    listed = client.get("/api/v1/cases")

    assert read.status_code == 404
    assert step.status_code == 404
    assert read.json()["error"]["code"] == "not_found"
    assert listed.json()["items"] == []
    assert count_transitions(city) == transitions


def test_an_unknown_case_is_not_found(city: Session, client: TestClient, act_as: ActAs) -> None:
    act_as(DISPATCHER)

    assert client.get("/api/v1/cases/no-such-case").status_code == 404
    assert post(client, "no-such-case", "register").status_code == 404


@pytest.mark.parametrize(
    ("state", "actor", "body", "field"),
    [
        ("reported", DISPATCHER, {"action": "levitate"}, "action"),
        ("reported", DISPATCHER, {"action": "reject"}, "note"),
        ("reported", DISPATCHER, {"action": "reject", "reason": "duplicate"}, "duplicate_of"),
        ("reported", DISPATCHER, {"action": "reject", "duplicate_of": "nope"}, "duplicate_of"),
        ("reported", DISPATCHER, {"action": "register", "score": 3}, "score"),
        ("reported", DISPATCHER, {"action": "register", "note": "x" * 2001}, "note"),
        ("registered", DISPATCHER, {"action": "dispatch", "department": "mi6"}, "department"),
        ("registered", DISPATCHER, {"action": "dispatch", "priority": "asap"}, "priority"),
        ("dispatched", HOUSING, {"action": "return"}, "note"),
        ("handling", HOUSING, {"action": "feedback"}, "note"),
        ("handled", ZHANG, {"action": "verify"}, "result"),
        ("handled", ZHANG, {"action": "verify", "result": "maybe"}, "result"),
        ("handled", ZHANG, {"action": "verify", "result": "fail"}, "note"),
        ("closed", DISPATCHER, {"action": "evaluate"}, "score"),
        ("closed", DISPATCHER, {"action": "evaluate", "score": 6}, "score"),
    ],
)
def test_a_step_with_bad_fields_is_422_naming_the_field(
    city: Session,
    client: TestClient,
    act_as: ActAs,
    state: str,
    actor: Actor,
    body: dict[str, Any],
    field: str,
) -> None:
    case_id = report_tile(client, act_as)
    walk_to(client, act_as, case_id, state)
    transitions = count_transitions(city)

    act_as(actor)
    response = client.post(f"/api/v1/cases/{case_id}/transitions", json=body)

    assert response.status_code == 422, response.text
    assert [detail["field"] for detail in response.json()["error"]["details"]] == [field]
    assert count_transitions(city) == transitions
    act_as(DISPATCHER)
    assert client.get(f"/api/v1/cases/{case_id}").json()["state"] == state


def test_a_department_may_return_a_case_that_is_not_its_own(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    case_id = report_tile(client, act_as)
    walk_to(client, act_as, case_id, "dispatched")

    act_as(HOUSING)
    returned = post(client, case_id, "return", note="the pavement belongs to the park")
    act_as(DISPATCHER)
    again = post(client, case_id, "dispatch", department="landscaping")

    assert returned.json()["state"] == "registered"
    assert returned.json()["deadline_at"] is None
    assert again.json()["state"] == "dispatched"
    assert again.json()["department"] == "landscaping"


def test_a_report_not_meeting_the_criterion_is_rejected_with_the_reason(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    case_id = report_tile(client, act_as)

    act_as(DISPATCHER)
    response = post(client, case_id, "reject", note="a single chipped corner, below 0.5 m2")

    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "rejected"
    assert body["transitions"][-1]["data"] == {"reason": "not_meeting_criterion"}


def test_a_district_official_may_register_and_dispatch(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    case_id = report_tile(client, act_as)
    official = Actor(name="official.yuexiu", role="district_official", scopes=("440104",))

    act_as(official)
    registered = post(client, case_id, "register")
    dispatched = post(client, case_id, "dispatch")

    assert registered.status_code == dispatched.status_code == 200
    assert dispatched.json()["department"] == "housing-construction"
