"""The demo city's case history: about 90 days of incident cases taken through the loop.

Generated with the other demo rows and written by the same bulk path (no ORM, no events):
a case per about 30 residents (at least ``MINIMUM_CASES``, at most ``MAXIMUM_CASES``), the
catalogue's categories weighted as a central district reports them (illegal parking,
exposed rubbish, floor tiles, street vending and small ads first), at a random point inside
a grid chosen by its residents (the grid cells are the lattice's rectangles, so a point
inside the bounds is inside the grid), routed to the category's department.

Each case is planned as the service would take it: reported (grid worker, hotline with a
synthetic caller, or a citizen on the public page), registered or rejected (not meeting the
criterion, or a duplicate of an open case nearby, counted on it as a "me too"), dispatched
with the category's deadline in working time (``citygrid.cases.calendar``), accepted,
answered, verified on site by the grid's worker (sometimes failed once: a rework), closed,
evaluated; each step a plausible number of working hours after the last. The plan is cut at
the build moment, so recent cases are still open, and a quota of the most recent ones is
held at each open state (reported, registered, dispatched, handling, handled), so the
command centre, the inboxes and the grid workers' verification lists have work. The case's
columns are then *replayed* from the steps kept, exactly as ``service._apply`` sets them,
so the transition rows and the columns the evaluation reads always agree; a case past its
deadline while with its department is escalated once, a minute after it, as the worker would.

The seed grid always has cases, some of them handled and waiting for zhangsijun.

Descriptions name the place and the problem, never a resident. Only hotline and citizen
cases have a reporter contact (a synthetic name and mobile number), in the columns intake
fills. The draws depend only on the seed; the timeline is anchored at the build moment.
"""

from __future__ import annotations

import base64
import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from itertools import accumulate
from typing import Any

from citygrid.cases.calendar import (
    CHINA_STANDARD_TIME,
    add_working_time,
    is_working_day,
    working_time_between,
)
from citygrid.cases.catalogue import Category, load_catalogue
from citygrid.cases.models import Action, CaseSource, CaseState, Priority
from citygrid.demo import vocabulary
from citygrid.demo.geography import DemoTerritory, Grid
from citygrid.demo.seed import SEED_GRID_CODE, SEED_GRID_WORKER

HISTORY_DAYS = 90
RESIDENTS_PER_CASE = 30
MINIMUM_CASES = 400
MAXIMUM_CASES = 10_000
SEED_GRID_CASES = 12
SEED_GRID_HANDLED = 3
DISPATCHER = "yuexiu-dispatcher"
ESCALATOR = "escalation"
#: Departments with a demo officer account; the others act through their API client.
OFFICERS = {
    "public-security": "ps-officer",
    "family-planning": "fp-officer",
    "civil-affairs": "ca-officer",
    "social-security": "ss-officer",
    "rental-housing": "rh-officer",
    "housing-construction": "hc-officer",
    "urban-management": "um-officer",
    "landscaping": "ls-officer",
    "power-supply": "pw-officer",
    "transport": "tr-officer",
}

CASE_COLUMNS: dict[str, tuple[str, ...]] = {
    "cases": (
        "id", "ref", "category", "kind", "priority", "state", "description", "lon", "lat",
        "grid_code", "community_code", "street_code", "district_code", "address", "source",
        "reporter_name", "reporter_contact_name", "reporter_contact_phone", "department",
        "reported_at", "registered_at", "dispatched_at", "deadline_at", "accepted_at",
        "handled_at", "closed_at", "evaluated_at", "escalated_at", "rework_count",
        "duplicate_of", "me_too_count", "satisfaction", "handling_hours", "closed_on_time",
        "created_at", "updated_at",
    ),
    "case_transitions": (
        "id", "case_id", "grid_code", "action", "from_state", "to_state", "actor_name",
        "actor_role", "actor_department", "at", "note", "data",
    ),
    "case_me_toos": ("id", "case_id", "grid_code", "reporter_name", "created_at"),
}  # fmt: skip

#: How often each category is reported, relative to 1 (the categories not named).
CATEGORY_WEIGHTS = {
    "E0403": 12.0,  # illegal parking
    "E0101": 10.0,  # exposed rubbish
    "C0201": 9.0,  # floor tiles
    "E0401": 8.0,  # street vending
    "E0201": 8.0,  # illegal small ads
    "C0101": 7.0,  # manhole covers
    "E0402": 7.0,  # shop spillover
    "C0105": 6.0,  # street lamps
    "E0102": 6.0,  # garbage accumulation
    "E0404": 6.0,  # disorderly bicycle parking
    "C0302": 5.0,  # rubbish bins
    "E0103": 5.0,  # dirty road
    "C0102": 4.0,  # storm drain grates
    "E0203": 3.0,  # graffiti
    "E0301": 3.0,  # construction noise
    "C0401": 3.0,  # trees
    "C0202": 2.0,  # traffic signs
    "C0205": 2.0,  # guardrails
}
EMERGENCY_WEIGHT = 0.3
SOURCES = ((CaseSource.GRID_WORKER, 0.70), (CaseSource.HOTLINE, 0.18), (CaseSource.CITIZEN, 0.12))
PRIORITIES = ((Priority.NORMAL, 0.70), (Priority.HIGH, 0.22), (Priority.URGENT, 0.08))
#: Share of reports rejected as not meeting the criterion, by source.
NOT_MEETING = {CaseSource.GRID_WORKER: 0.02, CaseSource.HOTLINE: 0.10, CaseSource.CITIZEN: 0.14}
DUPLICATE_SHARE = 0.03
REWORK_SHARE = 0.07
EVALUATED_SHARE = 0.95
#: At most a quarter of the cases held with their department are past the deadline.
OVERDUE_SHARE_OF_QUOTA = 4
#: Reports by hour of the day (China Standard Time), 07:00 to 21:00.
REPORT_HOURS = (
    (7, 2), (8, 6), (9, 10), (10, 11), (11, 8), (12, 3), (13, 3), (14, 9), (15, 10),
    (16, 9), (17, 6), (18, 3), (19, 3), (20, 2), (21, 1),
)  # fmt: skip

#: What a report says, by category (else the category's name and a generic problem).
PROBLEMS = {
    "C0201": (
        "人行道地砖松动破损，约1平方米，行人易绊倒",
        "地砖缺失三块，雨后积水",
        "地砖塌陷，高差约3厘米",
    ),
    "C0101": ("井盖破损，边缘有裂缝", "井盖移位，高出路面约3厘米", "井盖缺失，已放置临时警示"),
    "C0105": ("路灯夜间不亮", "路灯白天常亮", "灯杆倾斜，灯罩脱落"),
    "C0102": ("雨水箅子堵塞，排水不畅", "雨水箅子破损"),
    "C0302": ("果皮箱破损，垃圾外溢", "果皮箱缺失"),
    "E0403": ("机动车占用人行道停放", "车辆在消防通道违停", "路口违停影响通行"),
    "E0101": ("路边暴露垃圾一堆，约半立方米", "绿化带内有建筑垃圾"),
    "E0102": ("垃圾桶满溢，周边堆积垃圾", "垃圾收集点未及时清运"),
    "E0401": ("流动摊贩占道经营", "早餐摊占用人行道"),
    "E0402": ("商铺店外经营，货物堆放人行道", "餐馆占道摆放桌椅"),
    "E0201": ("电线杆上张贴小广告", "墙面喷涂办证小广告"),
    "E0404": ("共享单车乱停放，堵塞盲道", "单车堆放影响通行"),
    "E0103": ("路面油污，约10米", "路面泥沙未清扫"),
    "E0203": ("墙面乱涂乱画，约2平方米", "卷闸门被涂鸦"),
    "E0301": ("夜间施工噪声扰民", "工地午间施工噪声大"),
    "E0302": ("工地未覆盖裸土，扬尘明显", "工地出入口扬尘"),
    "E0303": ("渣土车沿路撒漏", "路面有泥浆撒漏"),
    "E0502": ("路面冒水，疑似供水管漏水", "消防栓旁持续漏水"),
    "E0503": ("雨后路面积水约20厘米", "人行道积水影响通行"),
    "C0202": ("交通标志牌倾斜", "标志牌被树枝遮挡"),
    "C0205": ("护栏断裂", "护栏松动倒伏"),
    "C0301": ("公厕洗手池损坏", "公厕卫生差，异味明显"),
    "C0401": ("行道树倾斜，有倒伏风险", "树枝折断悬挂在人行道上方"),
    "C0402": ("花坛破损", "花坛内植物枯死"),
}  # fmt: skip


def case_count(residents: int) -> int:
    """How many cases a demo of this size gets."""
    return max(MINIMUM_CASES, min(MAXIMUM_CASES, residents // RESIDENTS_PER_CASE))


def open_quota(cases: int) -> int:
    """How many cases are held at each open state."""
    return max(8, min(60, cases // 60))


def _sqlite_time(moment: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME storage: naive UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass(slots=True)
class Step:
    """One planned step of a case."""

    action: Action
    at: datetime
    actor: tuple[str, str, str | None]  # name, role, department
    note: str | None = None
    result: str | None = None
    score: int | None = None
    reason: str | None = None


@dataclass(slots=True)
class Plan:
    """A case as planned, before it is cut at the build moment."""

    category: Category
    grid: Grid
    lon: float
    lat: float
    address: str
    source: CaseSource
    priority: Priority
    reporter: tuple[str, str, str | None]
    contact_name: str | None
    contact_phone: str | None
    description: str
    steps: list[Step] = field(default_factory=list)
    duplicate_of: Plan | None = None
    stop: CaseState | None = None  # held at this open state
    id: int = 0
    ref: str = ""
    me_too: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def reported_at(self) -> datetime:
        """When it was reported."""
        return self.steps[0].at


class _Planner:
    def __init__(self, territory: DemoTerritory, seed: int, now: datetime, weights: Any) -> None:
        self.rng = random.Random(f"citygrid-demo-cases:{seed}")  # noqa: S311 - a simulation
        self.now = now
        self.grids = territory.grids
        self.grid_cumulative = list(accumulate(weights))
        self.communities = {c.code: c for c in territory.communities}
        self.street_codes = territory.street_codes
        catalogue = list(load_catalogue())
        self.categories = catalogue
        self.category_weights = [
            CATEGORY_WEIGHTS.get(
                item.code, EMERGENCY_WEIGHT if item.code.startswith("E05") else 1.0
            )
            for item in catalogue
        ]
        self.seed_grid = next((g for g in self.grids if g.code == SEED_GRID_CODE), None)

    # ---------------------------------------------------------------- draws
    def _choice(self, pairs: Sequence[tuple[Any, float]]) -> Any:
        return self.rng.choices([p for p, _w in pairs], weights=[w for _p, w in pairs])[0]

    def _hours(self, mean: float, minimum: float) -> float:
        return minimum + self.rng.expovariate(1.0 / mean)

    def _after(self, moment: datetime, mean: float, minimum: float = 0.05) -> datetime:
        return add_working_time(moment, hours=self._hours(mean, minimum))

    def _reported_at(self, source: CaseSource) -> datetime:
        local_now = self.now.astimezone(CHINA_STANDARD_TIME)
        hours = [h for h, _w in REPORT_HOURS]
        weights = [w for _h, w in REPORT_HOURS]
        while True:
            day = local_now.date() - timedelta(days=self.rng.randrange(HISTORY_DAYS))
            if (
                source is CaseSource.GRID_WORKER
                and not is_working_day(day)
                and self.rng.random() < 0.6
            ):
                continue
            hour = self.rng.choices(hours, weights=weights)[0]
            moment = datetime.combine(
                day, time(hour, self.rng.randrange(60), self.rng.randrange(60)), CHINA_STANDARD_TIME
            )
            if moment < local_now:
                return moment.astimezone(UTC)

    def _point(self, grid: Grid) -> tuple[float, float]:
        lon = grid.min_lon + (0.08 + 0.84 * self.rng.random()) * (grid.max_lon - grid.min_lon)
        lat = grid.min_lat + (0.08 + 0.84 * self.rng.random()) * (grid.max_lat - grid.min_lat)
        return round(lon, 6), round(lat, 6)

    def _address(self, grid: Grid) -> str:
        roads = vocabulary.STREETS[grid.street_index % len(vocabulary.STREETS)].roads
        return f"{self.rng.choice(roads)}{self.rng.randint(1, 280)}号附近"

    def _contact(self) -> tuple[str, str]:
        surname = self.rng.choices(
            [s for s, _c, _g in vocabulary.SURNAMES],
            weights=[g for _s, _c, g in vocabulary.SURNAMES],
        )[0]
        given = self.rng.choice(vocabulary.NEUTRAL_CHARS + vocabulary.FEMALE_CHARS)
        phone = self.rng.choice(vocabulary.MOBILE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
        return (
            f"{surname}{self.rng.choice(('先生', '女士')) if self.rng.random() < 0.5 else given}",
            phone,
        )

    def _description(self, category: Category, address: str) -> str:
        problems = PROBLEMS.get(category.code)
        problem = self.rng.choice(problems) if problems else f"{category.name_zh}需要处理，请核实"
        return f"{address}：{problem}。"

    @staticmethod
    def grid_worker(grid: Grid) -> tuple[str, str, str | None]:
        """The grid's worker as an actor (the seed grid's is zhangsijun)."""
        name = SEED_GRID_WORKER if grid.code == SEED_GRID_CODE else f"gw-{grid.code}"
        return name, "grid_worker", None

    # ---------------------------------------------------------------- plans
    def plan(self, grid: Grid | None = None) -> Plan:
        rng = self.rng
        category = rng.choices(self.categories, weights=self.category_weights)[0]
        if grid is None:
            grid = rng.choices(self.grids, cum_weights=self.grid_cumulative)[0]
        source = self._choice(SOURCES)
        lon, lat = self._point(grid)
        address = self._address(grid)
        contact_name = contact_phone = None
        if source is CaseSource.GRID_WORKER:
            reporter = self.grid_worker(grid)
        elif source is CaseSource.HOTLINE:
            reporter = (DISPATCHER, "dispatcher", None)
            contact_name, contact_phone = self._contact()
        else:
            reporter = (f"citizen:{rng.getrandbits(96):024x}", "citizen", None)
            if rng.random() < 0.6:
                contact_name, contact_phone = self._contact()
                if rng.random() < 0.5:
                    contact_name = None
        plan = Plan(
            category=category,
            grid=grid,
            lon=lon,
            lat=lat,
            address=address,
            source=source,
            priority=self._choice(PRIORITIES),
            reporter=reporter,
            contact_name=contact_name,
            contact_phone=contact_phone,
            description=self._description(category, address),
        )
        plan.steps.append(Step(Action.REPORT, self._reported_at(source), reporter))
        if rng.random() < NOT_MEETING[source]:
            plan.steps.append(
                Step(
                    Action.REJECT,
                    self._after(plan.reported_at, 0.6),
                    (DISPATCHER, "dispatcher", None),
                    note="经现场核实，未达到立案标准：" + category.register_zh,
                    reason="not_meeting_criterion",
                )
            )
            return plan
        self._loop(plan)
        return plan

    def _loop(self, plan: Plan) -> None:
        rng = self.rng
        category = plan.category
        dispatcher = (DISPATCHER, "dispatcher", None)
        department = category.department
        officer = (OFFICERS.get(department, department), "department_officer", department)
        worker = self.grid_worker(plan.grid)
        deadline_hours = category.deadline(plan.priority).hours
        registered = self._after(plan.reported_at, 0.6)
        dispatched = self._after(registered, 0.3, 0.02)
        # The department takes its share of the deadline (log-normal: about one case in
        # eight answered late); the grid worker checks on her next round.
        accepted = add_working_time(dispatched, hours=deadline_hours * rng.uniform(0.02, 0.1))
        share = math.exp(rng.gauss(math.log(0.4), 0.5))
        handled = add_working_time(accepted, hours=max(0.1, deadline_hours * share))
        plan.steps += [
            Step(Action.REGISTER, registered, dispatcher),
            Step(Action.DISPATCH, dispatched, dispatcher),
            Step(Action.ACCEPT, accepted, officer),
            Step(Action.FEEDBACK, handled, officer, note="已处理：" + category.close_zh),
        ]
        verified = add_working_time(handled, hours=deadline_hours * rng.uniform(0.03, 0.25))
        if rng.random() < REWORK_SHARE:
            plan.steps.append(
                Step(
                    Action.VERIFY,
                    verified,
                    worker,
                    note="现场核查未达到结案标准，请返工：" + category.close_zh,
                    result="fail",
                )
            )
            handled = add_working_time(verified, hours=0.3 + deadline_hours * rng.uniform(0.1, 0.4))
            plan.steps.append(
                Step(Action.FEEDBACK, handled, officer, note="已返工处理：" + category.close_zh)
            )
            verified = add_working_time(handled, hours=deadline_hours * rng.uniform(0.03, 0.25))
        plan.steps.append(Step(Action.VERIFY, verified, worker, result="pass"))
        if rng.random() < EVALUATED_SHARE:
            score = rng.choices((5, 4, 3, 2, 1), weights=(50, 30, 12, 5, 3))[0]
            plan.steps.append(
                Step(Action.EVALUATE, self._after(verified, 6.0, 0.5), dispatcher, score=score)
            )

    def duplicate(self, original: Plan) -> Plan | None:
        """A later report of the original's problem, rejected as its duplicate while the
        original is still open; None when no such moment exists."""
        rng = self.rng
        category = original.category
        window = min(category.duplicate_window_h, 24)
        reported = original.reported_at + timedelta(hours=rng.uniform(0.5, window))
        rejected = self._after(reported, 0.6)
        closing = next(
            (
                step.at
                for step in original.steps
                if step.action is Action.VERIFY and step.result == "pass"
            ),
            None,
        )
        if rejected > self.now or (closing is not None and closing <= rejected):
            return None
        # Within half the category's radius, kept inside the original's grid.
        radius_deg = category.duplicate_radius_m / 2 / 111_320
        grid = original.grid
        lon = min(
            max(original.lon + rng.uniform(-radius_deg, radius_deg) * 0.7, grid.min_lon + 1e-6),
            grid.max_lon - 1e-6,
        )
        lat = min(
            max(original.lat + rng.uniform(-radius_deg, radius_deg) * 0.7, grid.min_lat + 1e-6),
            grid.max_lat - 1e-6,
        )
        reporter = (f"citizen:{rng.getrandbits(96):024x}", "citizen", None)
        plan = Plan(
            category=category,
            grid=grid,
            lon=round(lon, 6),
            lat=round(lat, 6),
            address=original.address,
            source=CaseSource.CITIZEN,
            priority=original.priority,
            reporter=reporter,
            contact_name=None,
            contact_phone=None,
            description=self._description(category, original.address),
            duplicate_of=original,
        )
        plan.steps = [
            Step(Action.REPORT, reported, reporter),
            Step(
                Action.REJECT,
                rejected,
                (DISPATCHER, "dispatcher", None),
                note="与已受理案件重复",
                reason="duplicate",
            ),
        ]
        original.me_too.append((reporter[0], rejected))
        return plan


_ENTERS = {
    CaseState.REPORTED: Action.REPORT,
    CaseState.REGISTERED: Action.REGISTER,
    CaseState.DISPATCHED: Action.DISPATCH,
    CaseState.HANDLING: Action.ACCEPT,
    CaseState.HANDLED: Action.FEEDBACK,
}


def _entered(plan: Plan, state: CaseState) -> datetime | None:
    """When the plan first enters an open state (None if it never does)."""
    action = _ENTERS[state]
    return next((step.at for step in plan.steps if step.action is action), None)


def _cut(plan: Plan, now: datetime) -> list[Step]:
    """The steps that happened by ``now`` (and before the state the plan is held at)."""
    kept = [step for step in plan.steps if step.at <= now]
    if plan.stop is not None:
        action = _ENTERS[plan.stop]
        index = next(i for i, step in enumerate(kept) if step.action is action)
        kept = kept[: index + 1]
    return kept


@dataclass
class CaseRows:
    """The rows of the three case tables, and the count per state."""

    tables: dict[str, list[tuple[Any, ...]]]
    states: Counter[str]


def generate_case_rows(
    territory: DemoTerritory,
    *,
    residents_per_grid: dict[str, int],
    residents: int,
    seed: int,
    now: datetime,
    sqlite: bool,
) -> CaseRows:
    """The case history of the demo city up to ``now``."""
    weights = [residents_per_grid.get(grid.code, 0) + 3 for grid in territory.grids]
    planner = _Planner(territory, seed, now, weights)
    total = case_count(residents)
    plans: list[Plan] = []
    seed_grid = planner.seed_grid
    for index in range(total):
        grid = seed_grid if seed_grid is not None and index < SEED_GRID_CASES else None
        plan = planner.plan(grid)
        plans.append(plan)
    originals = [p for p in plans if p.steps[-1].action is not Action.REJECT]
    for _ in range(int(total * DUPLICATE_SHARE)):
        original = planner.rng.choice(originals)
        duplicate = planner.duplicate(original)
        if duplicate is not None:
            plans.append(duplicate)
    _hold_open(plans, now, open_quota(total), seed_grid)
    plans.sort(key=lambda p: (p.reported_at, p.lon))
    for number, plan in enumerate(plans, start=1):
        plan.id = number
        plan.ref = base64.urlsafe_b64encode(
            planner.rng.getrandbits(96).to_bytes(12, "big")
        ).decode()
    return _rows(plans, now, sqlite)


def _overdue(plan: Plan, now: datetime) -> bool:
    dispatched = _entered(plan, CaseState.DISPATCHED)
    if dispatched is None:
        return False
    return plan.category.deadline(plan.priority).deadline_from(dispatched) < now


def _hold_open(plans: list[Plan], now: datetime, quota: int, seed_grid: Grid | None) -> None:
    """Hold the most recent cases at each open state until each has ``quota``; the seed
    grid gets its handled cases waiting for verification."""
    candidates = [
        p
        for p in plans
        if p.duplicate_of is None and not p.me_too and p.steps[-1].action is not Action.REJECT
    ]
    if seed_grid is not None:
        mine = [
            (entered, plan)
            for plan in candidates
            if plan.grid is seed_grid
            and (entered := _entered(plan, CaseState.HANDLED)) is not None
            and entered <= now
        ]
        mine.sort(key=lambda pair: pair[0], reverse=True)
        for _entered_at, plan in mine[:SEED_GRID_HANDLED]:
            plan.stop = CaseState.HANDLED
    for state in (
        CaseState.REPORTED,
        CaseState.REGISTERED,
        CaseState.DISPATCHED,
        CaseState.HANDLING,
        CaseState.HANDLED,
    ):
        need = quota - sum(1 for p in plans if _state_of(_cut(p, now)) == state.value)
        if need <= 0:
            continue
        pool = [
            (entered, plan)
            for plan in candidates
            if plan.stop is None
            and (entered := _entered(plan, state)) is not None
            and entered <= now
            and _state_of(_cut(plan, now)) != state.value
        ]
        pool.sort(key=lambda pair: pair[0], reverse=True)
        overdue_left = max(1, quota // OVERDUE_SHARE_OF_QUOTA)
        for _entered_at, plan in pool:
            if need == 0:
                break
            # Keep most of the held cases within their deadline: a few are overdue.
            if state in (CaseState.DISPATCHED, CaseState.HANDLING) and _overdue(plan, now):
                if overdue_left == 0:
                    continue
                overdue_left -= 1
            plan.stop = state
            need -= 1
        # Too few recent ones within their deadline: the rest are overdue.
        for _entered_at, plan in pool:
            if need == 0:
                break
            if plan.stop is None:
                plan.stop = state
                need -= 1


def _state_of(steps: list[Step]) -> str:
    state = CaseState.REPORTED
    for step in steps:
        state = _target(state, step)
    return state.value


def _target(state: CaseState, step: Step) -> CaseState:
    action = step.action
    if action is Action.VERIFY:
        return CaseState.CLOSED if step.result == "pass" else CaseState.HANDLING
    return {
        Action.REPORT: CaseState.REPORTED,
        Action.REGISTER: CaseState.REGISTERED,
        Action.REJECT: CaseState.REJECTED,
        Action.DISPATCH: CaseState.DISPATCHED,
        Action.ACCEPT: CaseState.HANDLING,
        Action.FEEDBACK: CaseState.HANDLED,
        Action.EVALUATE: CaseState.EVALUATED,
        Action.ESCALATE: state,
    }[action]


def _with_escalation(steps: list[Step], deadline: datetime | None, now: datetime) -> list[Step]:
    """The steps with the worker's one escalation, a minute after the deadline passed while
    the case was dispatched or handling (if it was)."""
    if deadline is None:
        return steps
    state = CaseState.REPORTED
    for index, step in enumerate(steps):
        state = _target(state, step)
        if state not in (CaseState.DISPATCHED, CaseState.HANDLING):
            continue
        window_end = steps[index + 1].at if index + 1 < len(steps) else now
        moment = max(step.at, deadline) + timedelta(minutes=1)
        if moment < window_end:
            escalation = Step(Action.ESCALATE, moment, (ESCALATOR, "system", None))
            return [*steps[: index + 1], escalation, *steps[index + 1 :]]
    return steps


def _rows(plans: list[Plan], now: datetime, sqlite: bool) -> CaseRows:
    stamp = _sqlite_time if sqlite else (lambda moment: moment)
    cases: list[tuple[Any, ...]] = []
    transitions: list[tuple[Any, ...]] = []
    me_toos: list[tuple[Any, ...]] = []
    states: Counter[str] = Counter()
    transition_id = 0
    for plan in plans:
        steps = _cut(plan, now)
        category = plan.category
        columns: dict[str, Any] = {
            "state": CaseState.REPORTED,
            "priority": plan.priority,
            "department": category.department,
            "registered_at": None,
            "dispatched_at": None,
            "deadline_at": None,
            "accepted_at": None,
            "handled_at": None,
            "closed_at": None,
            "evaluated_at": None,
            "escalated_at": None,
            "rework_count": 0,
            "satisfaction": None,
            "handling_hours": None,
            "closed_on_time": None,
            "duplicate_of": None,
        }
        deadline = None
        if any(step.action is Action.DISPATCH for step in steps):
            dispatch = next(step for step in steps if step.action is Action.DISPATCH)
            deadline = category.deadline(plan.priority).deadline_from(dispatch.at)
        steps = _with_escalation(steps, deadline, now)
        for step in steps:
            before = columns["state"]
            data: dict[str, Any] = {}
            if step.action is Action.REPORT:
                data = {"source": plan.source.value, "priority": plan.priority.value}
            elif step.action is Action.REGISTER:
                columns["registered_at"] = step.at
            elif step.action is Action.REJECT:
                data = {"reason": step.reason}
                if plan.duplicate_of is not None:
                    columns["duplicate_of"] = plan.duplicate_of.id
                    data["duplicate_of"] = plan.duplicate_of.ref
            elif step.action is Action.DISPATCH:
                duration = category.deadline(plan.priority)
                columns["dispatched_at"] = step.at
                columns["deadline_at"] = deadline
                data = {
                    "department": category.department,
                    "priority": plan.priority.value,
                    "deadline": str(duration),
                    "deadline_at": deadline.isoformat() if deadline else None,
                }
            elif step.action is Action.ACCEPT:
                columns["accepted_at"] = step.at
            elif step.action is Action.FEEDBACK:
                columns["handled_at"] = step.at
                columns["handling_hours"] = max(
                    0.0,
                    working_time_between(columns["dispatched_at"], step.at).total_seconds() / 3600,
                )
            elif step.action is Action.VERIFY:
                data = {"result": step.result}
                if step.result == "pass":
                    columns["closed_at"] = step.at
                    columns["closed_on_time"] = deadline is None or step.at <= deadline
                else:
                    columns["rework_count"] += 1
            elif step.action is Action.EVALUATE:
                columns["satisfaction"] = step.score
                columns["evaluated_at"] = step.at
                data = {"score": step.score}
            elif step.action is Action.ESCALATE:
                columns["escalated_at"] = step.at
                data = {"deadline_at": deadline.isoformat() if deadline else None}
            columns["state"] = _target(before, step)
            transition_id += 1
            name, role, department = step.actor
            transitions.append(
                (
                    transition_id,
                    plan.id,
                    plan.grid.code,
                    step.action.value,
                    None if step.action is Action.REPORT else before.value,
                    columns["state"].value,
                    name,
                    role,
                    department,
                    stamp(step.at),
                    step.note,
                    json.dumps(data, ensure_ascii=False),
                )
            )
        me_too_count = 0
        for reporter, at in plan.me_too:
            if at <= now:
                me_too_count += 1
                me_toos.append((len(me_toos) + 1, plan.id, plan.grid.code, reporter, stamp(at)))
        states[columns["state"].value] += 1
        grid = plan.grid

        def optional(key: str, columns: dict[str, Any] = columns) -> Any:
            value = columns[key]
            return None if value is None else stamp(value)

        cases.append(
            (
                plan.id,
                plan.ref,
                category.code,
                category.kind.value,
                plan.priority.value,
                columns["state"].value,
                plan.description,
                plan.lon,
                plan.lat,
                grid.code,
                grid.community_code,
                grid.code[:9],
                grid.code[:6],
                plan.address,
                plan.source.value,
                plan.reporter[0],
                plan.contact_name,
                plan.contact_phone,
                columns["department"],
                stamp(plan.reported_at),
                optional("registered_at"),
                optional("dispatched_at"),
                optional("deadline_at"),
                optional("accepted_at"),
                optional("handled_at"),
                optional("closed_at"),
                optional("evaluated_at"),
                optional("escalated_at"),
                columns["rework_count"],
                columns["duplicate_of"],
                me_too_count,
                columns["satisfaction"],
                columns["handling_hours"],
                columns["closed_on_time"],
                stamp(plan.reported_at),
                stamp(steps[-1].at),
            )
        )
    return CaseRows(
        tables={"cases": cases, "case_transitions": transitions, "case_me_toos": me_toos},
        states=states,
    )
