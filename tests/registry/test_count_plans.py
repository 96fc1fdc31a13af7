"""The counts scan the grid_code indexes by range, on SQLite and on PostgreSQL alike:
that is what keeps a summary fast on a city of millions."""

from __future__ import annotations

import pytest
from sqlalchemy import Executable, text
from sqlalchemy.orm import Session

from citygrid.registry import repository

# The index each count must use (the table's grid_code index, or one led by grid_code).
EXPECTED_INDEX: dict[str, str | tuple[str, ...]] = {
    "buildings": "ix_buildings_grid_code",
    "housing_units": "ix_housing_units_grid_code",
    "households": "ix_households_grid_code",
    "residents": "ix_persons_grid_code_name",
    "components": "ix_components_grid_code_class_code",
}


def _explain(session: Session, statement: Executable, code_prefix: str) -> str:
    dialect = session.get_bind().dialect
    bound = statement.params(repository.grid_code_bounds(code_prefix))  # type: ignore[attr-defined]
    # The prefix is a test constant, so rendering it inline is safe and keeps the SQL plain.
    compiled = str(bound.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    if dialect.name == "sqlite":
        rows = session.execute(text("EXPLAIN QUERY PLAN " + compiled))
        return "\n".join(str(row[-1]) for row in rows)
    # The test tables are tiny, so the planner would rightly prefer a sequential scan;
    # forbidding it shows whether the index can serve the condition at all.
    session.execute(text("SET LOCAL enable_seqscan = off"))
    rows = session.execute(text("EXPLAIN " + compiled))
    return "\n".join(str(row[0]) for row in rows)


def _uses(plan: str, index: str | tuple[str, ...]) -> bool:
    names = (index,) if isinstance(index, str) else index
    return any(name in plan for name in names)


def _plan(session: Session, name: str, code_prefix: str) -> str:
    return _explain(session, repository.count_statements()[name], code_prefix)


@pytest.mark.parametrize("name", sorted(EXPECTED_INDEX))
@pytest.mark.parametrize("code_prefix", ["440104001", "440104001001002", "440109"])
def test_each_count_is_a_range_scan_of_its_grid_code_index(
    db_session: Session, name: str, code_prefix: str
) -> None:
    plan = _plan(db_session, name, code_prefix)

    assert _uses(plan, EXPECTED_INDEX[name]), plan
    assert "SCAN " + name not in plan


def test_the_whole_summary_statement_uses_every_index(db_session: Session) -> None:
    plan = _explain(db_session, repository._counts_statement(), "440104001001002")

    for index in EXPECTED_INDEX.values():
        assert _uses(plan, index), plan


def test_the_prefix_range_stays_within_digits() -> None:
    assert repository.grid_code_bounds("440104") == {
        "lower": "440104",
        "upper": "440104999999999",
    }
    assert repository.grid_code_bounds("440104001001002") == {
        "lower": "440104001001002",
        "upper": "440104001001002",
    }
