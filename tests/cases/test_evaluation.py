"""The evaluation (综合评价): each rate on a small set of cases whose figures are worked out
by hand, the territorial scope, the period, bad input and the Excel export."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from citygrid.cases import evaluation
from citygrid.kit.actor import Actor
from citygrid.territory.locator import Locator
from tests.cases.conftest import DISPATCHER, FAR_GRID, HOUSING, ZHANG
from tests.cases.helpers import file_case, step

ActAs = Callable[[Actor], None]

WANG = Actor(name="wang.fang", role="grid_worker", scopes=(FAR_GRID,), kind="account")
"""The grid worker of the other street's grid."""
POLICE = Actor(
    name="officer.police",
    role="department_officer",
    department="public-security",
    scopes=("440104",),
)
STREET_TWO = Actor(name="street2.official", role="street_official", scopes=("440104002",))
"""An official of the other street (Zhang Sijun's street is 440104001)."""


def cst(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of March 2026 given in China time (Mon 2 and Tue 3 are working days)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


@pytest.fixture
def story(city: Session, locator: Locator) -> dict[str, str]:
    """Seven reports of Monday 2 March 2026, 09:00, and one of April.

    Street 440104001 (floor tiles, housing and construction):
      A high:   dispatched Mon 09:00, answered Mon 11:00 (2 h), passed: on time.
      B urgent: deadline Mon 13:00+... (4 h: Mon 15:00); answered Mon 15:00 (4 h), failed,
                answered again Tue 09:00 (7.5 h from dispatch), passed Tue 10:00: late, rework.
      C:        rejected as not meeting the registration criterion.
      D:        rejected as a duplicate of A: left out of every figure.
      E:        still waiting to be registered.
      F high:   dispatched Mon 09:00 (deadline Wed 09:00), never answered: overdue now.
    Street 440104002 (illegal parking, public security):
      G high:   deadline Mon 11:00; answered Mon 17:00 (6 h), passed Mon 17:30: late.
    April:      H, outside the period.
    """
    monday = cst(2, 9)
    cases: dict[str, Any] = {}
    for name, priority in (("A", "high"), ("B", "urgent"), ("C", "high"), ("D", "high")):
        cases[name] = file_case(city, ZHANG, locator, now=monday, priority=priority)
    cases["E"] = file_case(city, ZHANG, locator, now=monday)
    cases["F"] = file_case(city, ZHANG, locator, now=monday)
    cases["G"] = file_case(
        city, DISPATCHER, locator, now=monday, grid_code=FAR_GRID, category="E0403"
    )
    cases["H"] = file_case(city, ZHANG, locator, now=datetime(2026, 4, 10, 2, tzinfo=UTC))

    for name in ("A", "B", "F"):
        step(city, DISPATCHER, cases[name], "register", now=monday)
        step(city, DISPATCHER, cases[name], "dispatch", now=monday)
    step(city, DISPATCHER, cases["C"], "reject", now=monday, note="The tile is intact")
    step(city, DISPATCHER, cases["D"], "reject", now=monday, duplicate_of=cases["A"].ref)

    step(city, HOUSING, cases["A"], "accept", now=cst(2, 10))
    step(city, HOUSING, cases["A"], "feedback", now=cst(2, 11), note="Tiles replaced")
    step(city, ZHANG, cases["A"], "verify", now=cst(2, 11, 30), result="pass")

    step(city, HOUSING, cases["B"], "accept", now=cst(2, 10))
    step(city, HOUSING, cases["B"], "feedback", now=cst(2, 15), note="Tiles replaced")
    step(city, ZHANG, cases["B"], "verify", now=cst(2, 16), result="fail", note="Still loose")
    step(city, HOUSING, cases["B"], "feedback", now=cst(3, 9), note="Tiles re-laid")
    step(city, ZHANG, cases["B"], "verify", now=cst(3, 10), result="pass")

    g = cases["G"]
    step(city, DISPATCHER, g, "register", now=monday)
    step(city, DISPATCHER, g, "dispatch", now=monday)
    step(city, POLICE, g, "accept", now=cst(2, 10))
    step(city, POLICE, g, "feedback", now=cst(2, 17), note="Car towed")
    step(city, WANG, g, "verify", now=cst(2, 17, 30), result="pass")
    city.flush()
    return {name: case.ref for name, case in cases.items()}


def get(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/api/v1/cases/evaluation", params={**MARCH, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_key(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["key"]: item for item in body["items"]}


def test_each_rate_per_street_as_worked_out_by_hand(
    story: dict[str, str], client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)

    body = get(client, group_by="street")
    streets = by_key(body)
    one, two, total = streets["440104001"], streets["440104002"], body["total"]

    assert (body["from"], body["to"], body["group_by"]) == ("2026-03-01", "2026-03-31", "street")
    counts = ("reported", "registered", "rejected", "dispatched", "handled", "closed")
    assert [one[name] for name in counts] == [5, 3, 1, 3, 2, 2]
    assert (one["closed_on_time"], one["reworked"], one["overdue"]) == (1, 1, 1)
    assert one["registration_rate"] == pytest.approx(3 / 5)
    assert one["closure_rate"] == pytest.approx(2 / 3)
    assert one["on_time_closure_rate"] == pytest.approx(1 / 3)
    assert one["rework_rate"] == pytest.approx(1 / 2)
    assert one["handling_hours_avg"] == pytest.approx((2 + 7.5) / 2)
    assert one["handling_hours_p90"] == pytest.approx(2 + 0.9 * (7.5 - 2))
    assert [two[name] for name in counts] == [1, 1, 0, 1, 1, 1]
    assert (two["closed_on_time"], two["on_time_closure_rate"], two["rework_rate"]) == (0, 0, 0)
    assert two["handling_hours_avg"] == two["handling_hours_p90"] == pytest.approx(6)
    assert [total[name] for name in counts] == [6, 4, 1, 4, 3, 3]
    assert total["closure_rate"] == pytest.approx(3 / 4)
    assert total["handling_hours_avg"] == pytest.approx((2 + 6 + 7.5) / 3)
    # Ranks 1..3 of 2, 6, 7.5: position 1 + 0.9 * 2 = 2.8, so 6 + 0.8 * (7.5 - 6).
    assert total["handling_hours_p90"] == pytest.approx(7.2)
    assert [item["key"] for item in body["items"]] == ["440104001", "440104002"]


def test_departments_communities_and_grids(
    story: dict[str, str], client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)

    departments = by_key(get(client, group_by="department"))
    communities = by_key(get(client, group_by="community"))
    grids = by_key(get(client, group_by="grid"))

    assert set(departments) == {"housing-construction", "public-security"}
    assert departments["housing-construction"]["reported"] == 5
    assert departments["housing-construction"]["name"] == "Housing and construction"
    assert departments["public-security"]["closed"] == 1
    assert {key: item["reported"] for key, item in communities.items()} == {
        "440104001001": 5,
        "440104002001": 1,
    }
    assert {key: item["registered"] for key, item in grids.items()} == {
        "440104001001002": 3,
        FAR_GRID: 1,
    }
    assert all(item["name"] and item["name"] != item["key"] for item in grids.values())


def test_a_street_official_sees_only_their_street(
    story: dict[str, str], client: TestClient, act_as: ActAs
) -> None:
    act_as(STREET_TWO)

    body = get(client, group_by="grid")

    assert [item["key"] for item in body["items"]] == [FAR_GRID]
    assert body["total"]["reported"] == 1
    assert body["total"]["handling_hours_p90"] == pytest.approx(6)


def test_a_department_officer_sees_their_department_only(
    story: dict[str, str], client: TestClient, act_as: ActAs
) -> None:
    act_as(POLICE)

    body = get(client, group_by="street")

    assert [item["key"] for item in body["items"]] == ["440104002"]
    assert body["total"]["reported"] == 1


def test_the_period_selects_by_report_day_in_china_time(
    story: dict[str, str], client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)

    april = get(client, **{"from": "2026-04-10", "to": "2026-04-10"})
    before = get(client, **{"from": "2026-03-01", "to": "2026-03-01"})
    monday = get(client, **{"from": "2026-03-02", "to": "2026-03-02"})

    assert april["total"]["reported"] == 1
    assert before["total"]["reported"] == 0 and before["items"] == []
    assert before["total"]["registration_rate"] is None
    assert monday["total"]["reported"] == 6


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "planet"}, "group_by"),
        ({"from": "2026-03-31", "to": "2026-03-01"}, "from"),
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
    ],
)
def test_bad_input_names_the_field(
    city: Session, client: TestClient, act_as: ActAs, params: dict[str, str], field: str
) -> None:
    act_as(DISPATCHER)

    response = client.get("/api/v1/cases/evaluation", params=params)

    assert response.status_code == 422
    assert [item["field"] for item in response.json()["error"]["details"]] == [field]


def test_the_default_period_is_the_last_thirty_days() -> None:
    now = datetime(2026, 3, 31, 17, 0, tzinfo=UTC)  # 1 April, 01:00 in China

    period = evaluation.parse_period(None, None, now=now)

    assert (period.first.isoformat(), period.last.isoformat()) == ("2026-03-03", "2026-04-01")


def test_the_excel_export_has_the_figures(
    story: dict[str, str], client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)

    response = client.get("/cases/evaluation.xlsx", params={**MARCH, "group_by": "street"})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert "attachment" in response.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    header = rows[0]
    assert header[0] == "Code" and "Registration rate" in header
    street_one = next(row for row in rows if row[0] == "440104001")
    column = {name: index for index, name in enumerate(header)}
    assert street_one[column["Cases reported"]] == 5
    assert street_one[column["Registration rate"]] == pytest.approx(0.6)
    assert street_one[column["Mean handling time (working hours)"]] == pytest.approx(4.75)
    rate_cell = sheet.cell(row=2, column=column["Registration rate"] + 1)
    assert rate_cell.number_format == "0.0%"
    assert rows[-1][column["Cases reported"]] == 6  # the total row


def test_the_excel_header_is_in_the_users_language(
    story: dict[str, str], client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)
    client.cookies.set("citygrid_lang", "zh_CN")

    response = client.get("/cases/evaluation.xlsx", params=MARCH)

    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet is not None
    header = next(sheet.iter_rows(values_only=True))
    assert "立案率" in header and "结案率" in header and "按期结案率" in header
