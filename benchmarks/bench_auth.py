"""What knowing the caller costs: one argon2id verification at the production parameters
(paid once per sign-in), and the per-request resolution of a session cookie or a bearer
token over HTTP (paid on every request), against an unauthenticated request.

    .venv/bin/python -m benchmarks.bench_auth

Every page and API answer of the gateway pays the per-request part, so it must stay a
small slice of the grid list's 30 ms p99 budget.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from tests.fixtures_territory import import_mini_city

from citygrid.access import accounts, passwords
from citygrid.kit.actor import Actor
from citygrid.kit.db import dispose_engines, unit_of_work
from citygrid.kit.migrate import upgrade
from citygrid.kit.settings import Settings

REQUESTS = 2_000
PASSWORD = "benchmark password"  # noqa: S105 - a throwaway database


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def timed(client: TestClient, kinds: dict[str, dict[str, str]]) -> dict[str, list[float]]:
    """Each kind of request in turn, interleaved, so load on the machine hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(REQUESTS):
        for name, headers in kinds.items():
            started = time.perf_counter()
            response = client.get("/api/v1/auth/me", headers=headers)
            samples[name].append((time.perf_counter() - started) * 1000)
            assert response.status_code in (200, 401), response.status_code
    return samples


def main() -> None:
    production = Settings(demo_mode=True)
    hashed = passwords.hash_password(production, PASSWORD)
    verify = []
    for _ in range(20):
        started = time.perf_counter()
        passwords.verify_password(production, hashed, PASSWORD)
        verify.append((time.perf_counter() - started) * 1000)
    print(
        f"argon2id verify (t={production.password_hash_time_cost}, "
        f"m={production.password_hash_memory_kib} KiB, p={production.password_hash_parallelism}): "
        f"median {statistics.median(verify):.1f} ms"
    )

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'auth.sqlite3'}"
        upgrade(url)
        settings = Settings(
            database_url=url,
            demo_mode=True,
            password_hash_time_cost=1,
            password_hash_memory_kib=1024,
            password_hash_parallelism=1,
        )
        with unit_of_work(url) as session:
            import_mini_city(session)
            accounts.create_account(
                session,
                Actor(name="bench"),
                settings=settings,
                username="zhang",
                password=PASSWORD,
                role="grid_worker",
                scopes=["440104001001002"],
            )
        from citygrid.app import create_app

        with TestClient(create_app(settings)) as client:
            token = client.post(
                "/api/v1/auth/token",
                data={"grant_type": "password", "username": "zhang", "password": PASSWORD},
            ).json()["access_token"]
            form = client.get("/signin", headers={"Accept": "text/html"})
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert csrf is not None
            client.post(
                "/signin",
                data={"username": "zhang", "password": PASSWORD, "csrf_token": csrf.group(1)},
                follow_redirects=False,
            )
            cookie = client.cookies["citygrid_session"]
            client.cookies.clear()
            runs = timed(
                client,
                {
                    "no credentials (401)": {},
                    "bearer token": {"Authorization": f"Bearer {token}"},
                    "session cookie": {"Cookie": f"citygrid_session={cookie}"},
                },
            )
        dispose_engines()
    print(f"GET /api/v1/auth/me over HTTP (TestClient, SQLite), {REQUESTS} requests each:")
    for name, samples in runs.items():
        print(
            f"  {name:<22} p50 {percentile(samples, 0.5):.2f} ms   "
            f"p99 {percentile(samples, 0.99):.2f} ms"
        )


if __name__ == "__main__":
    main()
