"""The seed of the demo city: its default size and the grid that reproduces the seed exactly.

Kept free of heavy imports: the command line reads these for its help texts.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SEED = 20261127
DEFAULT_RESIDENTS = 100_000
"""About 30 residents per grid; builds in well under 30 s (see benchmarks/bench_demo_build)."""

SEED_GRID_CODE = "440104001001002"
"""The grid that reproduces the seed's counts exactly (street 001, community 001, grid 002)."""

SEED_GRID_WORKER = "zhangsijun"
"""The account name of the seed grid's grid worker (created by the accounts issue)."""


@dataclass(frozen=True, slots=True)
class SeedGridCounts:
    """The counts the seed grid reproduces exactly."""

    buildings: int = 11
    max_floors: int = 7
    households: int = 214
    residents: int = 903
    manhole_covers: int = 18
    trees: int = 4
    flower_beds: int = 6


SEED_GRID = SeedGridCounts()
MINIMUM_RESIDENTS = SEED_GRID.residents
"""A smaller city could not hold the seed grid."""
