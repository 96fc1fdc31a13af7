"""The departments' data of the demo city, as each department would have published it:
subsistence allowances (civil affairs), pensions (social security), marital statuses (family
planning), tenancies (the rental housing office) and criminal record flags (public security).

Generated from the registry rows of :mod:`citygrid.demo.population`, vectorised with NumPy,
deterministic per seed, and written by the same bulk path. The proportions are plausible for
an old central district of Guangzhou:

- allowances (低保): about 1.5 % of residents, registered ones only (the allowance is tied to
  the household register), more often the old; most active, a few suspended or stopped;
  amounts up to Guangzhou's 2025 standard of 1,120 yuan a month;
- pensions: residents of pension age (men from 60, women from 55), most registered ones and
  some migrants; three in four an employee pension, the rest a resident's basic pension;
- marital statuses: the adults of child-bearing age (18 to 49) family planning follows, the
  same status as the registry's;
- tenancies: one for every resident whose residence is a rented one, same flat, same day;
- criminal record flags: rare (0.3 % of adults), only the flags that are set.

In the seed grid one registered household head of pension age always receives an active
allowance: the subject of the demo's death story (``citygrid demo story death``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from citygrid.demo.population import AS_OF, DemoRows
from citygrid.demo.seed import SEED_GRID_CODE

#: Columns written per department table (created_at / updated_at come from their defaults).
DATASET_COLUMNS: dict[str, tuple[str, ...]] = {
    "exchange_allowances": (
        "id", "person_id", "grid_code", "amount", "status", "since", "changed_by",
    ),
    "exchange_pensions": (
        "id", "person_id", "grid_code", "amount", "status", "since", "changed_by",
    ),
    "exchange_marital_statuses": (
        "id", "person_id", "grid_code", "marital_status", "since", "changed_by",
    ),
    "exchange_tenancies": (
        "id", "person_id", "unit_id", "grid_code", "since", "until", "status", "changed_by",
    ),
    "exchange_criminal_records": (
        "id", "person_id", "grid_code", "criminal_record", "since", "changed_by",
    ),
}  # fmt: skip

#: Who wrote each table: the demo's API client of the owning department.
PUBLISHER = {
    "exchange_allowances": "civil-affairs",
    "exchange_pensions": "social-security",
    "exchange_marital_statuses": "family-planning",
    "exchange_tenancies": "rental-housing",
    "exchange_criminal_records": "public-security",
}

ALLOWANCE_STANDARD = 1120  # yuan a month, Guangzhou 2025
ALLOWANCE_SHARE = 0.015
STORY_MINIMUM_AGE = 65

_DAY = np.timedelta64(1, "D")
_AS_OF = np.datetime64(AS_OF, "D")

# Column positions in the persons and residences rows (population.COLUMNS).
_P_ID, _P_GRID, _P_RELATION, _P_SEX, _P_BIRTH, _P_TYPE, _P_MARITAL = 0, 2, 4, 7, 8, 14, 15
_R_PERSON, _R_UNIT, _R_GRID, _R_KIND, _R_SINCE = 1, 2, 3, 4, 5


def _dates(days: NDArray[Any]) -> list[str]:
    result: list[str] = np.datetime_as_string(days, unit="D").tolist()
    return result


def _money(values: NDArray[np.float64]) -> list[str]:
    return [f"{value:.2f}" for value in values.tolist()]


def _rows(table: str, *columns: list[Any]) -> list[tuple[Any, ...]]:
    count = len(columns[0]) if columns else 0
    changed_by = f"demo:{PUBLISHER[table]}"
    return list(zip(range(1, count + 1), *columns, [changed_by] * count, strict=True))


def _spread_since(
    rng: np.random.Generator, earliest: NDArray[Any], latest: NDArray[Any]
) -> NDArray[Any]:
    """A day between ``earliest`` and ``latest`` (both datetime64[D] arrays), uniformly."""
    earliest = np.minimum(earliest, latest)
    span = (latest - earliest) // _DAY
    offsets = np.floor(rng.random(len(span)) * (span + 1)).astype(np.int64)
    result: NDArray[Any] = earliest + offsets * _DAY
    return result


def story_subject(
    person_ids: NDArray[np.int64],
    grids: NDArray[Any],
    relation: NDArray[Any],
    registered: NDArray[np.bool_],
    age: NDArray[np.float64],
) -> int:
    """The index of the seed grid's resident whose allowance the death story suspends: the
    first registered household head of at least 65 (any registered adult if none)."""
    in_seed = grids == SEED_GRID_CODE
    for condition in (
        in_seed & registered & (relation == "head") & (age >= STORY_MINIMUM_AGE),
        in_seed & registered & (age >= 18),
        in_seed & (age >= 18),
    ):
        found = np.flatnonzero(condition)
        if len(found):
            return int(found[np.argmin(person_ids[found])])
    raise LookupError("the seed grid has no adult")


def department_rows(rows: DemoRows, *, seed: int) -> None:
    """Add the department tables to ``rows`` (from its persons and residences)."""
    rng = np.random.default_rng([seed, 7])
    persons = rows.tables["persons"]
    n = len(persons)
    columns = list(zip(*persons, strict=True)) if n else [()] * 16
    ids = np.array(columns[_P_ID], dtype=np.int64)
    grids = np.array(columns[_P_GRID], dtype=object)
    relation = np.array(columns[_P_RELATION], dtype=object)
    male = np.array(columns[_P_SEX], dtype=object) == "M"
    birth = np.array(columns[_P_BIRTH], dtype="datetime64[D]")
    registered = np.array(columns[_P_TYPE], dtype=object) == "registered"
    marital = np.array(columns[_P_MARITAL], dtype=object)
    age: NDArray[np.float64] = (_AS_OF - birth).astype(np.int64) / 365.2425
    adult = age >= 18

    # Subsistence allowances: registered residents, the old about three times as often.
    weight = np.where(age >= 60, 3.0, np.where(adult, 1.0, 0.6)) * registered
    chance = ALLOWANCE_SHARE * n * weight / max(float(weight.sum()), 1.0)
    receives = rng.random(n) < chance
    subject = story_subject(ids, grids, relation, registered, age)
    receives[subject] = True
    picked = np.flatnonzero(receives)
    status_draw = rng.random(len(picked))
    status = np.where(
        status_draw < 0.9, "active", np.where(status_draw < 0.94, "suspended", "stopped")
    )
    status[picked == subject] = "active"
    amount = np.round(rng.uniform(0.25, 1.0, len(picked)) * ALLOWANCE_STANDARD / 10) * 10
    earliest = np.maximum(birth[picked], np.datetime64("2008-01-01"))
    since = _spread_since(rng, earliest, np.full(len(picked), _AS_OF - 30 * _DAY))
    rows.tables["exchange_allowances"] = _rows(
        "exchange_allowances",
        ids[picked].tolist(),
        grids[picked].tolist(),
        _money(amount),
        status.tolist(),
        _dates(since),
    )

    # Pensions: from 60 (men) or 55 (women), most registered residents, some migrants.
    pension_age = np.where(male, 60, 55)
    covered = rng.random(n) < np.where(registered, 0.93, 0.35)
    paid = np.flatnonzero((age >= pension_age) & covered)
    employee = rng.random(len(paid)) < 0.75
    amount = np.where(
        employee,
        np.clip(rng.normal(4300, 1300, len(paid)), 1800, 12000),
        rng.uniform(180, 420, len(paid)),
    )
    retired = birth[paid] + (pension_age[paid] * 365.2425).astype(np.int64) * _DAY
    rows.tables["exchange_pensions"] = _rows(
        "exchange_pensions",
        ids[paid].tolist(),
        grids[paid].tolist(),
        _money(amount),
        ["active"] * len(paid),
        _dates(np.minimum(retired, _AS_OF)),
    )

    # Marital statuses: the adults of child-bearing age, as in the registry.
    followed = np.flatnonzero(adult & (age < 50) & (marital != None))  # noqa: E711 - NumPy
    status_of = marital[followed]
    earliest = birth[followed] + np.timedelta64(20 * 365, "D")
    since = _spread_since(rng, earliest, np.full(len(followed), _AS_OF - _DAY))
    since_text = _dates(since)
    rows.tables["exchange_marital_statuses"] = _rows(
        "exchange_marital_statuses",
        ids[followed].tolist(),
        grids[followed].tolist(),
        status_of.tolist(),
        [
            None if s == "unmarried" else day
            for s, day in zip(status_of.tolist(), since_text, strict=True)
        ],
    )

    # Tenancies: every rented residence, the same flat from the same day.
    rented = [row for row in rows.tables["residences"] if row[_R_KIND] == "tenant"]
    rows.tables["exchange_tenancies"] = _rows(
        "exchange_tenancies",
        [row[_R_PERSON] for row in rented],
        [row[_R_UNIT] for row in rented],
        [row[_R_GRID] for row in rented],
        [row[_R_SINCE] for row in rented],
        [None] * len(rented),
        ["active"] * len(rented),
    )

    # Criminal record flags: rare, and only the set ones.
    flagged = np.flatnonzero(adult & (rng.random(n) < 0.003))
    earliest = birth[flagged] + np.timedelta64(18 * 365, "D")
    since = _spread_since(rng, earliest, np.full(len(flagged), _AS_OF - _DAY))
    rows.tables["exchange_criminal_records"] = _rows(
        "exchange_criminal_records",
        ids[flagged].tolist(),
        grids[flagged].tolist(),
        [True] * len(flagged),
        _dates(since),
    )
