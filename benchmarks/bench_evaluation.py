"""Evaluation (综合评价) over 1,000,000 cases: time ``cases.evaluation.evaluate`` per grouping.

    .venv/bin/python -m benchmarks.bench_evaluation [--cases 1000000] [--db var/bench-eval.sqlite3]
        [--keep] [--repeat 3]

Builds a fresh, migrated SQLite file: the stand-in territory of ``bench_summary`` (district
440104, 10 streets, 100 communities, 1,000 grids) and ``--cases`` cases reported over two
years with their transitions, written by ``executemany`` on the raw connection in batches.
The mix is realistic: about 6% still reported, 4% rejected as not meeting the criterion and
4% as duplicates, some registered / dispatched / handling / handled, 55% closed and 20%
evaluated; 12% reworked; handling times log-normal around 6 working hours; 12 departments.
Handling hours are drawn, not reckoned from the calendar (the query only reads them).

Then, for each grouping, the evaluation of the whole two years for the district's
dispatcher and for one street's official (best of ``--repeat``). Target (issue 5): at most
5 s over 1,000,000 cases.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("CITYGRID_DEMO_MODE", "true")

from sqlalchemy import insert  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from benchmarks.bench_summary import _territory_rows  # noqa: E402
from citygrid.cases import evaluation  # noqa: E402
from citygrid.kit.actor import Actor  # noqa: E402
from citygrid.kit.db import make_engine  # noqa: E402
from citygrid.kit.migrate import upgrade  # noqa: E402
from citygrid.territory.models import TerritorialUnit  # noqa: E402

BATCH = 50_000
START = datetime(2024, 12, 1, tzinfo=UTC)
_NAIVE_START = START.replace(tzinfo=None)
DAYS = 730
DEPARTMENTS = (
    ("housing-construction", 22),
    ("urban-management", 30),
    ("landscaping", 8),
    ("water-affairs", 8),
    ("transport", 8),
    ("power-supply", 5),
    ("public-security", 8),
    ("market-regulation", 4),
    ("civil-affairs", 2),
    ("rental-housing", 2),
    ("social-security", 1),
    ("family-planning", 2),
)
CATEGORIES = ("C0201", "C0101", "C0105", "E0101", "E0403", "E0201", "E0301")
# state, weight, how far it got: 0 reported .. 6 evaluated
STATES = (
    ("reported", 6, 0),
    ("rejected", 8, 0),
    ("registered", 2, 1),
    ("dispatched", 3, 2),
    ("handling", 4, 3),
    ("handled", 2, 4),
    ("closed", 55, 5),
    ("evaluated", 20, 6),
)

CASE_COLUMNS = (
    "id, ref, category, kind, priority, state, description, lon, lat, grid_code, "
    "community_code, street_code, district_code, source, reporter_name, department, "
    "reported_at, registered_at, dispatched_at, deadline_at, accepted_at, handled_at, "
    "closed_at, evaluated_at, rework_count, me_too_count, duplicate_of, satisfaction, "
    "handling_hours, closed_on_time, created_at, updated_at"
)
TRANSITION_COLUMNS = (
    "case_id, grid_code, action, from_state, to_state, actor_name, actor_role, at, data"
)


def _text(moment: datetime | None) -> str | None:
    """SQLAlchemy's SQLite storage format of a (naive, UTC) datetime."""
    return None if moment is None else moment.isoformat(" ", "microseconds")


def _generate(count: int, grids: list[str], rng: random.Random) -> Any:
    departments = [name for name, _ in DEPARTMENTS]
    weights = [weight for _, weight in DEPARTMENTS]
    states = [row for row in STATES]
    state_weights = [row[1] for row in STATES]
    for case_id in range(1, count + 1):
        grid = rng.choice(grids)
        state, _weight, reached = rng.choices(states, state_weights)[0]
        reported = _NAIVE_START + timedelta(seconds=rng.randrange(DAYS * 86_400))
        category = rng.choice(CATEGORIES)
        duplicate_of = None
        if state == "rejected" and case_id > 10 and rng.random() < 0.5:
            duplicate_of = rng.randrange(1, case_id)
        registered = dispatched = deadline = accepted = handled = closed = evaluated = None
        hours = None
        rework = 0
        steps = [("report", None, "reported", reported)]
        moment = reported
        if state == "rejected":
            steps.append(("reject", "reported", "rejected", moment + timedelta(minutes=20)))
        if reached >= 1:
            registered = moment = reported + timedelta(minutes=rng.randint(5, 90))
            steps.append(("register", "reported", "registered", moment))
        if reached >= 2:
            dispatched = moment = moment + timedelta(minutes=rng.randint(5, 60))
            deadline = dispatched + timedelta(hours=rng.choice((4, 24, 72, 120)))
            steps.append(("dispatch", "registered", "dispatched", moment))
        if reached >= 3:
            accepted = moment = moment + timedelta(minutes=rng.randint(10, 240))
            steps.append(("accept", "dispatched", "handling", moment))
        if reached >= 4:
            hours = round(rng.lognormvariate(1.8, 0.8), 2)
            handled = moment = dispatched + timedelta(hours=hours * 3.2)  # type: ignore[operator]
            steps.append(("feedback", "handling", "handled", moment))
            if rng.random() < 0.12:
                rework = 1
                steps.append(("verify", "handled", "handling", moment + timedelta(hours=2)))
                steps.append(("feedback", "handling", "handled", moment + timedelta(hours=20)))
                hours = round(hours + rng.uniform(2, 10), 2)
                handled = moment = moment + timedelta(hours=20)
        if reached >= 5:
            closed = moment = moment + timedelta(hours=rng.uniform(0.5, 30))
            steps.append(("verify", "handled", "closed", moment))
        if reached >= 6:
            evaluated = moment = moment + timedelta(hours=rng.uniform(1, 72))
            steps.append(("evaluate", "closed", "evaluated", moment))
        case = (
            case_id,
            f"bench{case_id:011d}",
            category,
            "component" if category[0] == "C" else "event",
            rng.choice(("urgent", "high", "normal", "normal")),
            state,
            "benchmark case",
            113.27,
            23.13,
            grid,
            grid[:12],
            grid[:9],
            grid[:6],
            "grid_worker",
            f"worker{grid[-6:]}",
            rng.choices(departments, weights)[0],
            _text(reported),
            _text(registered),
            _text(dispatched),
            _text(deadline),
            _text(accepted),
            _text(handled),
            _text(closed),
            _text(evaluated),
            rework,
            0,
            duplicate_of,
            rng.randint(3, 5) if evaluated else None,
            hours,
            None if closed is None else int(closed <= deadline),  # type: ignore[operator]
            _text(reported),
            _text(moment),
        )
        transitions = [
            (case_id, grid, action, before, after, "bench", "system", _text(at), "{}")
            for action, before, after, at in steps
        ]
        yield case, transitions


def build(path: Path, count: int) -> float:
    """A fresh migrated SQLite file with the territory and ``count`` cases; seconds taken."""
    if path.exists():
        path.unlink()
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        session.execute(insert(TerritorialUnit), _territory_rows())
        session.commit()
    engine.dispose()
    grids = [row["code"] for row in _territory_rows() if row["level"] == "grid"]
    rng = random.Random(20_261_207)
    started = time.perf_counter()
    connection = sqlite3.connect(path)
    # A throw-away file: no journal during the load (a huge WAL slows every page lookup),
    # WAL again afterwards as the application runs it.
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA locking_mode=EXCLUSIVE")
    connection.execute("PRAGMA cache_size=-262144")
    # Secondary indexes are built once after the load (sorted), not row by row.
    indexes = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('cases', 'case_transitions')"
    ).fetchall()
    for name, _sql in indexes:
        connection.execute(f'DROP INDEX "{name}"')
    # Fixed column lists of this file, no outside input.
    case_sql = f"INSERT INTO cases ({CASE_COLUMNS}) VALUES ({', '.join('?' * 32)})"  # noqa: S608
    transition_sql = (
        f"INSERT INTO case_transitions ({TRANSITION_COLUMNS}) "  # noqa: S608
        f"VALUES ({', '.join('?' * 9)})"
    )
    cases: list[tuple[Any, ...]] = []
    transitions: list[tuple[Any, ...]] = []
    for case, steps in _generate(count, grids, rng):
        cases.append(case)
        transitions.extend(steps)
        if len(cases) == BATCH:
            connection.executemany(case_sql, cases)
            connection.executemany(transition_sql, transitions)
            cases, transitions = [], []
    if cases:
        connection.executemany(case_sql, cases)
        connection.executemany(transition_sql, transitions)
    for _name, sql in indexes:
        connection.execute(sql)
    connection.commit()
    connection.execute("ANALYZE")
    connection.execute("PRAGMA locking_mode=NORMAL")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.close()
    return time.perf_counter() - started


def measure(path: Path, repeat: int) -> list[tuple[str, str, float, int]]:
    """(who, group_by, best seconds, groups) of each evaluation."""
    engine = make_engine(f"sqlite:///{path}")
    period = evaluation.Period(START.date(), START.date() + timedelta(days=DAYS))
    actors = (
        ("district", Actor(name="dispatcher", role="dispatcher", scopes=("440104",))),
        ("street", Actor(name="street", role="street_official", scopes=("440104003",))),
    )
    results = []
    for who, actor in actors:
        for group_by in evaluation.GROUP_BYS:
            best = float("inf")
            groups = 0
            for _ in range(repeat):
                with Session(engine) as session:
                    started = time.perf_counter()
                    report = evaluation.evaluate(session, actor, group_by=group_by, period=period)
                    best = min(best, time.perf_counter() - started)
                    groups = len(report.items)
            results.append((who, group_by, best, groups))
    # One month, as a dashboard asks most often.
    month = evaluation.Period(date(2026, 10, 1), date(2026, 10, 31))
    with Session(engine) as session:
        started = time.perf_counter()
        evaluation.evaluate(session, actors[0][1], group_by="street", period=month)
        results.append(("district, one month", "street", time.perf_counter() - started, 10))
    engine.dispose()
    return results


def main() -> None:
    """Build, measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("var/bench-evaluation.sqlite3"))
    parser.add_argument("--keep", action="store_true", help="reuse an existing --db")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)
    if not (args.keep and args.db.exists()):
        seconds = build(args.db, args.cases)
        print(f"built {args.cases:,} cases with transitions in {seconds:.1f} s")
    for who, group_by, seconds, groups in measure(args.db, args.repeat):
        verdict = "ok" if seconds <= 5 else "SLOW"
        print(
            f"{who:>20} by {group_by:<10} {groups:>5} groups  {seconds * 1000:8.0f} ms  {verdict}"
        )


if __name__ == "__main__":
    main()
