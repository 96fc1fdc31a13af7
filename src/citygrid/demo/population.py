"""The rows of the demo city: buildings, units, households, persons, residences, components
and organisations, generated from a seed with NumPy and returned as plain tuples ready for
``executemany`` / COPY.

Every table gets explicit ids (1, 2, 3 ...) so that rows can point at each other without a
round trip to the database. The same seed and size give the same rows, and the seed grid
(``440104001001002``) always holds exactly the counts in :data:`SEED_GRID`.

People are generated household by household: a head, maybe a spouse, children, parents,
grandchildren; ages follow the head's; the ID number encodes the birth date and sex; the
division of birth is a Guangzhou district for registered residents and a county in another
province (mostly) for migrants.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray

from citygrid.demo import vocabulary
from citygrid.demo.geography import DemoTerritory, Grid
from citygrid.demo.seed import MINIMUM_RESIDENTS, SEED_GRID, SEED_GRID_CODE
from citygrid.registry.idnumber import make_id_numbers, make_uscc
from citygrid.registry.schemas import ETHNIC_GROUPS

AS_OF = date(2026, 1, 1)
"""The demo city is the state of 1 January 2026: nobody is born after it."""


# Columns written per table (created_at / updated_at come from their server defaults).
COLUMNS: dict[str, tuple[str, ...]] = {
    "buildings": (
        "id", "grid_code", "address", "name", "lon", "lat", "floors", "built_year", "qr_token",
    ),
    "housing_units": ("id", "building_id", "grid_code", "floor", "number", "use", "area_m2"),
    "organisations": ("id", "grid_code", "name", "kind", "uscc", "unit_id"),
    "households": ("id", "grid_code", "unit_id", "registration_type"),
    "persons": (
        "id", "ref", "grid_code", "household_id", "relation_to_head", "id_number", "name",
        "sex", "birth_date", "ethnicity", "mobile", "landline", "employer_id", "status",
        "population_type", "marital_status",
    ),
    "residences": ("id", "person_id", "unit_id", "grid_code", "kind", "since", "until"),
    "components": (
        "id", "class_code", "grid_code", "identifier", "lon", "lat", "condition",
        "owner_department",
    ),
}  # fmt: skip
TABLE_ORDER = tuple(COLUMNS)
"""Insert order: every table after the tables it points at."""

Row = tuple[Any, ...]
Progress = Callable[[str], None]
GENERATION_STEPS = 9
"""How many times :func:`generate_rows` reports progress."""

RELATIONS = ("head", "spouse", "child", "parent", "grandchild", "sibling", "other")
HEAD, SPOUSE, CHILD, PARENT, GRANDCHILD, SIBLING, OTHER = range(7)
MARITAL = ("unmarried", "married", "divorced", "widowed")

_ETHNIC_CODE = {zh: code for code, (zh, _en) in ETHNIC_GROUPS.items()}


@dataclass(frozen=True, slots=True)
class ComponentClassInfo:
    """What the generator needs of a catalogue class."""

    code: str
    slug: str
    owner_department: str


# Mean count per grid of each component class (by slug), for a grid of ordinary density.
COMPONENT_MEANS: dict[str, float] = {
    "manhole_cover": 16.0,
    "storm_drain_grate": 6.0,
    "fire_hydrant": 1.5,
    "electricity_box": 2.0,
    "street_lamp": 7.0,
    "water_meter_box": 2.5,
    "floor_tiles": 2.0,
    "traffic_sign": 2.0,
    "bus_stop": 0.15,
    "traffic_light": 0.4,
    "guardrail": 1.0,
    "bicycle_parking": 0.8,
    "public_toilet": 0.08,
    "rubbish_bin": 4.0,
    "refuse_station": 0.05,
    "billboard": 3.0,
    "tree": 14.0,
    "flower_bed": 2.0,
    "green_space": 0.4,
    "sculpture": 0.03,
    "construction_site": 0.02,
    "dangerous_building": 0.03,
    "surveillance_camera": 3.0,
    "notice_board": 0.6,
}
# Classes that are more common in parks (multiplied by 1 + PARK_BOOST * (1 - park_factor)).
PARK_BOOST = {"tree": 4.0, "flower_bed": 2.0, "green_space": 6.0, "sculpture": 3.0}


@dataclass(slots=True)
class DemoRows:
    """The generated rows of every registry table, in insert order."""

    tables: dict[str, list[Row]] = field(default_factory=dict)

    def count(self, table: str) -> int:
        """How many rows a table gets."""
        return len(self.tables.get(table, ()))


def _weights(pairs: Sequence[tuple[str, float]]) -> tuple[list[str], NDArray[np.float64]]:
    names = [name for name, _weight in pairs]
    weights = np.array([weight for _name, weight in pairs], dtype=np.float64)
    return names, weights / weights.sum()


def _categorical(
    rng: np.random.Generator, cumulative: NDArray[np.float64], size: int
) -> NDArray[np.int64]:
    """Draw ``size`` indices from a cumulative distribution."""
    result: NDArray[np.int64] = np.searchsorted(cumulative, rng.random(size), side="right")
    return np.minimum(result, len(cumulative) - 1)


def _rows_categorical(rng: np.random.Generator, probabilities: NDArray[np.float64]) -> NDArray[Any]:
    """One draw per row of a (n, k) probability table."""
    cumulative = np.cumsum(probabilities, axis=1)
    draws = rng.random(len(probabilities))[:, None]
    result: NDArray[Any] = np.minimum((draws > cumulative).sum(axis=1), probabilities.shape[1] - 1)
    return result


# =============================================================================== grids


def residents_per_grid(territory: DemoTerritory, residents: int, seed: int) -> NDArray[np.int64]:
    """How many residents live in each grid (the seed grid: exactly its count)."""
    if residents < MINIMUM_RESIDENTS:
        raise ValueError(f"residents must be at least {MINIMUM_RESIDENTS} (the seed grid's)")
    rng = np.random.default_rng([seed, 2])
    # Density varies from community to community (old lanes, new estates) and grid to grid.
    community_factor = {
        community.code: float(factor)
        for community, factor in zip(
            territory.communities,
            rng.lognormal(0.0, 0.35, len(territory.communities)),
            strict=True,
        )
    }
    weights = rng.lognormal(0.0, 0.45, len(territory.grids))
    weights *= np.array(
        [grid.park_factor * community_factor[grid.community_code] for grid in territory.grids]
    )
    seed_index = _seed_index(territory)
    weights[seed_index] = 0.0
    counts = rng.multinomial(residents - SEED_GRID.residents, weights / weights.sum())
    counts[seed_index] = SEED_GRID.residents
    result: NDArray[np.int64] = counts.astype(np.int64)
    return result


def _seed_index(territory: DemoTerritory) -> int:
    for index, grid in enumerate(territory.grids):
        if grid.code == SEED_GRID_CODE:
            return index
    raise LookupError(SEED_GRID_CODE)


def _household_sizes(
    rng: np.random.Generator, residents: int, households: int
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Split ``residents`` into ``households`` sizes (each >= 1); a few are collective."""
    collective = rng.random(households) < (0.03 if households >= 3 else 0.0)
    weights = rng.gamma(2.0, 1.0, households) * np.where(collective, 8.0, 1.0)
    extra = rng.multinomial(residents - households, weights / weights.sum())
    sizes: NDArray[np.int64] = (1 + extra).astype(np.int64)
    # A collective household of one is just a family household of one.
    return sizes, collective & (sizes > 1)


@dataclass(slots=True)
class _BuildingPlan:
    floors: int
    per_floor: int
    shop_ground: bool
    office: bool
    kind: int  # 0 walk-up, 1 mid-rise, 2 tower


def _plan_buildings(rng: np.random.Generator, dwellings: int) -> list[_BuildingPlan]:
    """Buildings enough for ``dwellings`` residential units (walk-ups, mid-rises, towers)."""
    plans: list[_BuildingPlan] = []
    remaining = dwellings
    while remaining > 0:
        draw = rng.random()
        if remaining < 40 or draw < 0.6:
            kind, floors = 0, int(rng.integers(3, 10))
        elif draw < 0.85:
            kind, floors = 1, int(rng.integers(10, 19))
        else:
            kind, floors = 2, int(rng.integers(19, 34))
        per_floor = int(rng.integers(2, 7))
        if kind == 2 and remaining > 150 and rng.random() < 0.25:
            # An office tower: all commercial, houses employers, no dwellings.
            plans.append(_BuildingPlan(floors, per_floor, False, True, kind))
            continue
        shop_ground = floors >= 2 and rng.random() < 0.45
        residential_floors = floors - shop_ground
        if residential_floors * per_floor > remaining:
            residential_floors = math.ceil(remaining / per_floor)
            floors = residential_floors + shop_ground
        remaining -= residential_floors * per_floor
        plans.append(_BuildingPlan(floors, per_floor, bool(shop_ground), False, kind))
    return plans


def _plan_seed_buildings(rng: np.random.Generator, dwellings: int) -> list[_BuildingPlan]:
    """The seed grid's 11 walk-ups of at most 7 floors, with room for ``dwellings`` units."""
    count = SEED_GRID.buildings
    floors = rng.integers(4, SEED_GRID.max_floors + 1, count)
    shop_ground = rng.random(count) < 0.35
    per_floor = np.full(count, 2)
    residential_floors = floors - shop_ground
    # Add one unit per floor to the building with the fewest, until every dwelling fits.
    while int((residential_floors * per_floor).sum()) < dwellings:
        candidates = np.flatnonzero(per_floor == per_floor.min())
        per_floor[candidates[int(rng.integers(len(candidates)))]] += 1
    return [
        _BuildingPlan(int(f), int(p), bool(s), False, 0)
        for f, p, s in zip(floors, per_floor, shop_ground, strict=True)
    ]


# =============================================================================== generator


class _Generator:
    """Holds the running state of one generation (ids, counters, random streams)."""

    def __init__(
        self,
        territory: DemoTerritory,
        component_classes: Sequence[ComponentClassInfo],
        seed: int,
        progress: Progress | None,
    ) -> None:
        self.territory = territory
        self.component_classes = list(component_classes)
        self.seed = seed
        self.progress = progress or (lambda _step: None)
        self.rows = DemoRows({table: [] for table in TABLE_ORDER})
        self.road_numbers: dict[str, int] = {}
        # Units stay mutable until their households move in (which sets their use).
        self.unit_rows: list[list[Any]] = []
        self.used_uscc: set[str] = set()

    # ------------------------------------------------------------------ places

    def places(self, residents: NDArray[np.int64]) -> dict[str, Any]:
        """Buildings, units and households of every grid; returns per-household arrays."""
        rng = np.random.default_rng([self.seed, 3])
        buildings = self.rows.tables["buildings"]
        units = self.unit_rows
        households_grid: list[int] = []
        households_unit: list[int] = []
        households_size: list[NDArray[np.int64]] = []
        households_collective: list[NDArray[np.bool_]] = []
        commercial_units: list[tuple[int, int, bool]] = []  # unit id, grid index, office
        for grid_index, grid in enumerate(self.territory.grids):
            people = int(residents[grid_index])
            is_seed = grid.code == SEED_GRID_CODE
            if people == 0:
                continue
            if is_seed:
                count = SEED_GRID.households
            else:
                count = max(1, round(people / rng.uniform(2.3, 3.0)))
            sizes, collective = _household_sizes(rng, people, count)
            dwellings = count + round(count * rng.uniform(0.04, 0.12))
            plans = (
                _plan_seed_buildings(rng, dwellings) if is_seed else _plan_buildings(rng, dwellings)
            )
            dwelling_ids: list[int] = []
            for plan in plans:
                building_id = len(buildings) + 1
                buildings.append(self._building(rng, grid, building_id, plan))
                for floor in range(1, plan.floors + 1):
                    commercial = plan.office or (plan.shop_ground and floor == 1)
                    for number in range(1, plan.per_floor + 1):
                        unit_id = len(units) + 1
                        if commercial:
                            use = "commercial"
                            commercial_units.append((unit_id, grid_index, plan.office))
                        else:
                            use = "vacant"  # until a household moves in (below)
                            dwelling_ids.append(unit_id)
                        # The area is drawn for all units at once (below).
                        units.append(
                            [unit_id, building_id, grid.code, floor, f"{floor:02d}{number:02d}",
                             use, None]
                        )  # fmt: skip
            occupied = rng.permutation(len(dwelling_ids))[:count]
            households_grid.extend([grid_index] * count)
            households_unit.extend(dwelling_ids[i] for i in occupied)
            households_size.append(sizes)
            households_collective.append(collective)
        is_commercial = np.zeros(len(units), dtype=bool)
        is_commercial[[unit_id - 1 for unit_id, _g, _o in commercial_units]] = True
        areas = np.where(
            is_commercial,
            rng.uniform(20, 160, len(units)),
            np.clip(rng.normal(72, 20, len(units)), 28, 180),
        ).round(1)
        for unit, area in zip(units, areas.tolist(), strict=True):
            unit[6] = area
        self.progress("places")
        return {
            "grid": np.array(households_grid, dtype=np.int64),
            "unit": np.array(households_unit, dtype=np.int64),
            "size": np.concatenate(households_size),
            "collective": np.concatenate(households_collective),
            "commercial_units": commercial_units,
        }

    def _building(
        self, rng: np.random.Generator, grid: Grid, building_id: int, plan: _BuildingPlan
    ) -> Row:
        street = vocabulary.STREETS[grid.street_index]
        road = street.roads[int(rng.integers(len(street.roads)))]
        number = self.road_numbers.get(road, 0) + int(rng.integers(1, 5))
        self.road_numbers[road] = number
        name = None
        if plan.kind == 2 or plan.office:
            name = (
                vocabulary.BRAND_FIRST[int(rng.integers(len(vocabulary.BRAND_FIRST)))]
                + vocabulary.BRAND_SECOND[int(rng.integers(len(vocabulary.BRAND_SECOND)))]
                + ("大厦" if plan.office else vocabulary.BUILDING_SUFFIXES[int(rng.integers(5))])
            )
        built = (
            int(rng.integers(1955, 2002)),
            int(rng.integers(1985, 2017)),
            int(rng.integers(1992, 2025)),
        )[plan.kind]
        # Keep the point 10 % inside the cell so it sits clearly within its grid.
        lon = grid.min_lon + (grid.max_lon - grid.min_lon) * rng.uniform(0.1, 0.9)
        lat = grid.min_lat + (grid.max_lat - grid.min_lat) * rng.uniform(0.1, 0.9)
        qr_token = base64.urlsafe_b64encode(rng.bytes(24)).decode("ascii")
        return (
            building_id, grid.code, f"{road}{number}号", name, round(lon, 7), round(lat, 7),
            plan.floors, built, qr_token,
        )  # fmt: skip

    # ------------------------------------------------------------------ organisations

    def organisations(self, commercial_units: list[tuple[int, int, bool]]) -> NDArray[np.float64]:
        """An employer or shop in most commercial units; returns hiring weights per org."""
        rng = np.random.default_rng([self.seed, 4])
        rows = self.rows.tables["organisations"]
        weights: list[float] = []
        surnames = [name for name, _n, _g in vocabulary.SURNAMES]
        for unit_id, grid_index, office in commercial_units:
            if rng.random() > (0.8 if office else 0.85):
                continue
            grid = self.territory.grids[grid_index]
            employer = office or rng.random() < 0.2
            brand = (
                vocabulary.BRAND_FIRST[int(rng.integers(len(vocabulary.BRAND_FIRST)))]
                + vocabulary.BRAND_SECOND[int(rng.integers(len(vocabulary.BRAND_SECOND)))]
            )
            if employer:
                kind_name = vocabulary.COMPANY_KINDS[
                    int(rng.integers(len(vocabulary.COMPANY_KINDS)))
                ]
                name = f"广州市{brand}{kind_name}有限公司"
                prefix = "91440104"
            else:
                shop = vocabulary.SHOP_KINDS[int(rng.integers(len(vocabulary.SHOP_KINDS)))]
                if rng.random() < 0.5:
                    name = f"{surnames[int(rng.integers(len(surnames)))]}记{shop}"
                else:
                    name = f"{brand}{shop}"
                prefix = "92440104"  # 个体工商户: individual business
            uscc = self._uscc(rng, prefix)
            rows.append(
                (len(rows) + 1, grid.code, name, "employer" if employer else "shop", uscc, unit_id)
            )
            weights.append(6.0 if employer else 1.0)
        self.progress("organisations")
        return np.array(weights, dtype=np.float64)

    def _uscc(self, rng: np.random.Generator, prefix: str) -> str:
        while True:
            digits = [int(d) for d in rng.integers(0, 10, 8)]
            # The organisation code (GB 11714) carries its own check character.
            total = sum(d * w for d, w in zip(digits, (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
            check = 11 - total % 11
            check_char = "X" if check == 10 else "0" if check == 11 else str(check)
            uscc = make_uscc(prefix + "".join(map(str, digits)) + check_char)
            if uscc not in self.used_uscc:
                self.used_uscc.add(uscc)
                return uscc

    # ------------------------------------------------------------------ people

    def people(self, households: dict[str, Any], hiring: NDArray[np.float64]) -> None:
        """Households, persons and residences, vectorised over every person at once."""
        rng = np.random.default_rng([self.seed, 5])
        grid_codes = [grid.code for grid in self.territory.grids]
        h_grid: NDArray[np.int64] = households["grid"]
        h_unit: NDArray[np.int64] = households["unit"]
        h_size: NDArray[np.int64] = households["size"]
        h_collective: NDArray[np.bool_] = households["collective"]
        n_households = len(h_size)

        # Households: registration type, migrant or registered, owner-occupied or rented.
        h_migrant = ~h_collective & (rng.random(n_households) < 0.28)
        rents = np.where(
            h_collective, True, np.where(h_migrant, rng.random(n_households) < 0.92,
                                         rng.random(n_households) < 0.18)
        )  # fmt: skip
        units = self.unit_rows
        for unit_id, rented in zip(h_unit.tolist(), rents.tolist(), strict=True):
            units[unit_id - 1][5] = "rental" if rented else "owner_occupied"
        self.rows.tables["housing_units"] = [tuple(unit) for unit in units]
        self.rows.tables["households"] = list(
            zip(
                range(1, n_households + 1),
                [grid_codes[g] for g in h_grid.tolist()],
                h_unit.tolist(),
                np.where(h_collective, "collective", "family").tolist(),
                strict=True,
            )
        )
        self.progress("households")

        # Persons: position in the household, relation to the head.
        n = int(h_size.sum())
        hh = np.repeat(np.arange(n_households), h_size)
        starts = np.cumsum(h_size) - h_size
        position = np.arange(n) - starts[hh]
        collective = h_collective[hh]
        draw = rng.random(n)
        second = np.select([draw < 0.78, draw < 0.9, draw < 0.96], [SPOUSE, CHILD, PARENT], SIBLING)
        later = np.select(
            [draw < 0.72, draw < 0.86, draw < 0.94, draw < 0.97],
            [CHILD, PARENT, GRANDCHILD, SIBLING],
            OTHER,
        )
        relation = np.where(position == 1, second, later)
        relation = np.where(collective & (position > 0), OTHER, relation)
        relation = np.where(position == 0, HEAD, relation)

        # Ages: the head's by household kind, the others' from the head's.
        migrant_household = h_migrant[hh]
        head_age_h = np.where(
            h_collective,
            rng.normal(34, 8, n_households),
            np.where(h_migrant, rng.normal(36, 9, n_households), rng.normal(52, 15, n_households)),
        )
        head_age_h = np.clip(head_age_h, 19, 92)
        head_male_h = rng.random(n_households) < np.where(h_collective, 0.5, 0.62)
        head_age = head_age_h[hh]
        has_spouse_h = np.zeros(n_households, dtype=bool)
        has_spouse_h[hh[relation == SPOUSE]] = True
        # Children need a head old enough to have them; grandchildren an older one.
        relation = np.where((relation == GRANDCHILD) & (head_age < 50), CHILD, relation)
        relation = np.where((relation == CHILD) & (head_age < 24), SIBLING, relation)
        relation = np.where((relation == PARENT) & (head_age > 72), OTHER, relation)

        noise = rng.random(n)
        age = np.select(
            [
                relation == HEAD,
                relation == SPOUSE,
                relation == CHILD,
                relation == PARENT,
                relation == GRANDCHILD,
                relation == SIBLING,
            ],
            [
                head_age,
                head_age + rng.normal(0, 3, n) + np.where(head_male_h[hh], -2.0, 2.0),
                head_age - (22 + 18 * noise),
                head_age + (22 + 13 * noise),
                head_age - (46 + 16 * noise),
                head_age + rng.normal(0, 5, n),
            ],
            np.where(collective, 18 + 30 * noise, 18 + 55 * noise),
        )
        age = np.where(relation == SPOUSE, np.maximum(age, 20), age)
        # Clipped ages would pile up on one birthday: spread each over a year of days.
        age = np.clip(age, 0.0, 98.0)
        days = np.floor((age + rng.random(n)) * 365.2425).astype(np.int64)
        age = days / 365.2425
        birth = np.datetime64(AS_OF, "D") - days.astype("timedelta64[D]")

        # Sex: the spouse is of the other sex; odd ID sequences are men.
        male = rng.random(n) < 0.51
        male = np.where(relation == HEAD, head_male_h[hh], male)
        male = np.where(relation == SPOUSE, ~head_male_h[hh], male)

        # Registered or migrant: a registered household may have a migrant spouse.
        migrant = np.where(
            relation == SPOUSE, migrant_household | (rng.random(n) < 0.08), migrant_household
        )
        self.progress("relations")

        id_numbers, ethnicity = self._identities(rng, hh, relation, birth, male, migrant)
        names = self._names(rng, hh, relation, male, h_migrant, has_spouse_h, head_male_h, age)
        marital = self._marital(rng, relation, age, has_spouse_h[hh], migrant)

        # Mobiles from the age of 12; a landline for some owner-occupiers.
        prefixes = np.array(vocabulary.MOBILE_PREFIXES)
        has_mobile = (age >= 12) & (rng.random(n) < 0.96)
        prefix_pick = prefixes[rng.integers(0, len(prefixes), n)].tolist()
        line = rng.integers(0, 100_000_000, n).tolist()
        mobile = [
            f"{p}{x:08d}" if has else None
            for p, x, has in zip(prefix_pick, line, has_mobile.tolist(), strict=True)
        ]
        has_landline = (relation == HEAD) & ~rents[hh] & (rng.random(n) < 0.25)
        land = rng.integers(83_000_000, 88_000_000, n).tolist()
        landline = [
            f"020-{x}" if has else None for x, has in zip(land, has_landline.tolist(), strict=True)
        ]

        # Some working-age residents work for one of the district's organisations.
        employer: list[int | None] = [None] * n
        if len(hiring):
            works = (age >= 18) & (age < 60) & (rng.random(n) < 0.3)
            picks = _categorical(rng, np.cumsum(hiring / hiring.sum()), int(works.sum())) + 1
            for index, org in zip(np.flatnonzero(works).tolist(), picks.tolist(), strict=True):
                employer[index] = org
        self.progress("details")

        ids = np.arange(1, n + 1, dtype=np.uint64)
        refs = _opaque_refs(ids, self.seed)
        grid_of_person = [grid_codes[g] for g in h_grid[hh].tolist()]
        birth_text = np.datetime_as_string(birth, unit="D").tolist()
        self.rows.tables["persons"] = list(
            zip(
                ids.tolist(),
                refs,
                grid_of_person,
                (hh + 1).tolist(),
                [RELATIONS[r] for r in relation.tolist()],
                id_numbers,
                names,
                np.where(male, "M", "F").tolist(),
                birth_text,
                ethnicity,
                mobile,
                landline,
                employer,
                ["alive"] * n,
                np.where(migrant, "migrant", "registered").tolist(),
                marital,
                strict=True,
            )
        )
        self.progress("persons")

        # One residence per person, in the household's unit.
        rented = rents[hh]
        kind = np.where(
            rented, "tenant", np.where(migrant, "actual_residence", "registered_address")
        )
        moved_days = np.where(
            rented, rng.integers(30, 2000, n), rng.integers(0, 40 * 365, n)
        ).astype("timedelta64[D]")
        since = np.maximum(np.datetime64(AS_OF, "D") - moved_days, birth)
        self.rows.tables["residences"] = list(
            zip(
                ids.tolist(),
                ids.tolist(),
                h_unit[hh].tolist(),
                grid_of_person,
                kind.tolist(),
                np.datetime_as_string(since, unit="D").tolist(),
                [None] * n,
                strict=True,
            )
        )
        self.progress("residences")

    def _identities(
        self,
        rng: np.random.Generator,
        hh: NDArray[np.int64],
        relation: NDArray[np.int64],
        birth: NDArray[Any],
        male: NDArray[np.bool_],
        migrant: NDArray[np.bool_],
    ) -> tuple[list[str], list[str]]:
        """Valid, unique ID numbers (division, birth date, sex) and ethnic group codes."""
        n = len(hh)
        gz_names, gz_p = _weights(vocabulary.GUANGZHOU_DIVISIONS)
        mg_names, mg_p = _weights(vocabulary.MIGRANT_DIVISIONS)
        divisions = gz_names + mg_names
        registered_pick = _categorical(rng, np.cumsum(gz_p), n)
        # Migrants of one household come from the head's county; spouses from their own.
        home_h = _categorical(rng, np.cumsum(mg_p), int(hh.max()) + 1 if n else 0)
        own = _categorical(rng, np.cumsum(mg_p), n)
        migrant_pick = np.where(relation == SPOUSE, own, home_h[hh]) + len(gz_names)
        division = np.where(migrant, migrant_pick, registered_pick)
        # Dongshan District (440102) ceased to exist in 2005: younger people carry Yuexiu's.
        dongshan = divisions.index("440102")
        yuexiu = divisions.index("440104")
        division = np.where(
            (division == dongshan) & (birth >= np.datetime64("2005-01-01")), yuexiu, division
        )

        # Sequences: unique within (division, birth date, sex), odd for men, spread out.
        day = (birth - np.datetime64("1900-01-01")).astype(np.int64)
        key = (division * 100_000 + day) * 2 + male
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        first = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
        group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n) - group_start
        if n and int(rank.max()) >= 499:
            raise ValueError("too many people share a division, birth date and sex")
        offset = (key * 2_654_435_761 + self.seed) % 499
        slot = (offset + rank * 7) % 499 + 1  # 1..499, distinct within the group
        sequence = np.where(male, 2 * slot - 1, 2 * slot)

        id_numbers: list[str] = [""] * n
        birth_dates = birth.tolist()
        sequences = sequence.tolist()
        for index_division, code in enumerate(divisions):
            members = np.flatnonzero(division == index_division).tolist()
            if not members:
                continue
            made = make_id_numbers(
                code, [birth_dates[i] for i in members], [sequences[i] for i in members]
            )
            for i, number in zip(members, made, strict=True):
                id_numbers[i] = number

        # Ethnic groups other than Han, by the province of the division of birth.
        ethnic = np.full(n, "01", dtype=object)
        province = np.array([code[:2] for code in divisions])[division]
        draw = rng.random(n)
        for prefix, groups in vocabulary.ETHNIC_MINORITIES.items():
            where = province == prefix
            low = 0.0
            for zh, share in groups:
                ethnic[where & (draw >= low) & (draw < low + share)] = _ETHNIC_CODE[zh]
                low += share
        self.progress("identities")
        return id_numbers, ethnic.tolist()

    def _names(
        self,
        rng: np.random.Generator,
        hh: NDArray[np.int64],
        relation: NDArray[np.int64],
        male: NDArray[np.bool_],
        migrant_h: NDArray[np.bool_],
        has_spouse_h: NDArray[np.bool_],
        head_male_h: NDArray[np.bool_],
        age: NDArray[np.float64],
    ) -> list[str]:
        """Chinese names: the family's surname for blood relatives, common given names."""
        n = len(hh)
        n_households = len(migrant_h)
        surnames = [name for name, _n, _g in vocabulary.SURNAMES]
        national = np.cumsum(_normalise([w for _s, w, _g in vocabulary.SURNAMES]))
        guangdong = np.cumsum(_normalise([g for _s, _w, g in vocabulary.SURNAMES]))

        def draw_surnames(size: int, migrant: NDArray[np.bool_]) -> NDArray[np.int64]:
            result: NDArray[np.int64] = np.where(
                migrant, _categorical(rng, national, size), _categorical(rng, guangdong, size)
            )
            return result

        head_s = draw_surnames(n_households, migrant_h)
        spouse_s = draw_surnames(n_households, migrant_h)
        family_s = np.where(head_male_h | ~has_spouse_h, head_s, spouse_s)
        own_s = draw_surnames(n, migrant_h[hh])
        surname = np.select(
            [
                relation == HEAD,
                relation == SPOUSE,
                (relation == CHILD) | (relation == GRANDCHILD),
                relation == SIBLING,
                (relation == PARENT) & male,
            ],
            [head_s[hh], spouse_s[hh], family_s[hh], head_s[hh], head_s[hh]],
            own_s,
        )
        male_chars = np.array(list(vocabulary.MALE_CHARS))
        female_chars = np.array(list(vocabulary.FEMALE_CHARS))
        neutral = np.array(list(vocabulary.NEUTRAL_CHARS))
        first_pool_male = np.concatenate([male_chars, neutral])
        first_pool_female = np.concatenate([female_chars, neutral])
        first = np.where(
            male,
            first_pool_male[rng.integers(0, len(first_pool_male), n)],
            first_pool_female[rng.integers(0, len(first_pool_female), n)],
        )
        second = np.where(
            male,
            male_chars[rng.integers(0, len(male_chars), n)],
            female_chars[rng.integers(0, len(female_chars), n)],
        )
        # Single-character given names are commoner among older people.
        single = rng.random(n) < np.where(age > 50, 0.35, 0.12)
        second = np.where(single | (first == second), "", second)
        return [
            surnames[s] + a + b
            for s, a, b in zip(surname.tolist(), first.tolist(), second.tolist(), strict=True)
        ]

    def _marital(
        self,
        rng: np.random.Generator,
        relation: NDArray[np.int64],
        age: NDArray[np.float64],
        household_has_spouse: NDArray[np.bool_],
        migrant: NDArray[np.bool_],
    ) -> list[str | None]:
        """Marital status of adults (18 and over); minors have none."""
        # Rows: age bands <25, 25-35, 35-50, 50-70, 70+; columns: MARITAL.
        table = np.array(
            [
                [0.95, 0.04, 0.01, 0.00],
                [0.55, 0.38, 0.07, 0.00],
                [0.20, 0.55, 0.20, 0.05],
                [0.06, 0.55, 0.17, 0.22],
                [0.03, 0.37, 0.08, 0.52],
            ]
        )
        band = np.searchsorted(np.array([25, 35, 50, 70]), age, side="right")
        status = _rows_categorical(rng, table[band])
        partnered = ((relation == HEAD) & household_has_spouse) | (relation == SPOUSE)
        status = np.where(partnered, 1, status)
        adult = age >= 18
        return [
            MARITAL[s] if a else None for s, a in zip(status.tolist(), adult.tolist(), strict=True)
        ]

    # ------------------------------------------------------------------ components

    def components(self) -> None:
        """Urban components of every grid, by catalogue class (the seed grid's exact)."""
        rng = np.random.default_rng([self.seed, 6])
        rows = self.rows.tables["components"]
        classes = [c for c in self.component_classes if c.slug in COMPONENT_MEANS]
        exact = {
            "manhole_cover": SEED_GRID.manhole_covers,
            "tree": SEED_GRID.trees,
            "flower_bed": SEED_GRID.flower_beds,
        }
        grids = self.territory.grids
        codes = np.array([grid.code for grid in grids], dtype=object)
        min_lon = np.array([grid.min_lon for grid in grids])
        min_lat = np.array([grid.min_lat for grid in grids])
        width = np.array([grid.max_lon for grid in grids]) - min_lon
        height = np.array([grid.max_lat for grid in grids]) - min_lat
        park = np.array([grid.park_factor for grid in grids])
        seed_index = _seed_index(self.territory)
        density = rng.lognormal(0.0, 0.3, len(grids))
        conditions = np.array(["good", "damaged", "missing"], dtype=object)
        condition_cum = np.cumsum([0.95, 0.04, 0.01])
        for info in classes:
            mean = COMPONENT_MEANS[info.slug] * density
            boost = PARK_BOOST.get(info.slug)
            mean = mean * (1 + boost * (1 - park)) if boost else mean * (0.3 + 0.7 * park)
            counts = rng.poisson(mean)
            if info.slug in exact:
                counts[seed_index] = exact[info.slug]
            total = int(counts.sum())
            if total == 0:
                continue
            owner = np.repeat(np.arange(len(grids)), counts)
            serial = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + 1
            lons = np.round(min_lon[owner] + width[owner] * rng.uniform(0.02, 0.98, total), 7)
            lats = np.round(min_lat[owner] + height[owner] * rng.uniform(0.02, 0.98, total), 7)
            state = conditions[_categorical(rng, condition_cum, total)]
            grid_code = codes[owner].tolist()
            rows.extend(
                zip(
                    [f"{code}{info.code}{number:06d}" for code, number in
                     zip(grid_code, serial.tolist(), strict=True)],
                    [info.code] * total,
                    grid_code,
                    lons.tolist(),
                    lats.tolist(),
                    state.tolist(),
                    [info.owner_department] * total,
                    strict=True,
                )
            )  # fmt: skip
        # In identifier order (grid, then class), both indexes of the table grow at the end.
        rows.sort()
        self.rows.tables["components"] = [
            (number, klass, grid_code, identifier, lon, lat, condition, department)
            for number, (identifier, klass, grid_code, lon, lat, condition, department) in
            enumerate(rows, start=1)
        ]  # fmt: skip
        self.progress("components")


def _normalise(weights: Sequence[float]) -> NDArray[np.float64]:
    array = np.array(weights, dtype=np.float64)
    result: NDArray[np.float64] = array / array.sum()
    return result


def _opaque_refs(ids: NDArray[np.uint64], seed: int) -> list[str]:
    """16-character opaque references, unique (a keyed bijection of the id) and handed out
    in ascending order, so the unique index on ``persons.ref`` grows at its end during the
    load. The gap between neighbours is random and about 2**64 / count, so one reference
    tells nothing usable about another."""
    key = np.uint64((seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        mixed = ids * np.uint64(0xBF58476D1CE4E5B9)
        mixed ^= key
        mixed ^= mixed >> np.uint64(31)
        mixed *= np.uint64(0x94D049BB133111EB)
        mixed ^= mixed >> np.uint64(29)
    mixed.sort()
    return [f"{value:016x}" for value in mixed.tolist()]


def generate_rows(
    territory: DemoTerritory,
    component_classes: Sequence[ComponentClassInfo],
    *,
    residents: int,
    seed: int,
    progress: Progress | None = None,
) -> DemoRows:
    """Every registry row of the demo city for ``residents`` residents and ``seed``."""
    generator = _Generator(territory, component_classes, seed, progress)
    per_grid = residents_per_grid(territory, residents, seed)
    households = generator.places(per_grid)
    hiring = generator.organisations(households["commercial_units"])
    generator.people(households, hiring)
    generator.components()
    return generator.rows
