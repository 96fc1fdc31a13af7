"""The case page over HTTP, signed in as the district dispatcher (session cookie), through a
real uvicorn server (in this process) on a SQLite file, one request at a time:

    .venv/bin/python -m benchmarks.bench_case_page [--requests 300]

- a case without a reporter's contact (nothing read through the gateway);
- a hotline case: the contact read through the access gateway, masked, and an access-log
  entry committed before the page leaves (on SQLite in a transaction that takes the write
  lock at its start);
- the Reveal form (POST with the CSRF token): the contact in clear, audited.

Target (issue 5): p99 at most 100 ms for each.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("CITYGRID_DEMO_MODE", "true")

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from tests.cases.conftest import DISPATCHER, ZHANG  # noqa: E402
from tests.cases.helpers import file_case  # noqa: E402
from tests.cases.live import PASSWORD, live_settings, serve  # noqa: E402
from tests.fixtures_territory import import_mini_city  # noqa: E402

from benchmarks.bench_case_photo import percentile  # noqa: E402
from citygrid.access import accounts, sessions  # noqa: E402
from citygrid.app import create_app  # noqa: E402
from citygrid.audit.models import AuditEntry  # noqa: E402
from citygrid.kit.actor import SYSTEM  # noqa: E402
from citygrid.kit.db import unit_of_work  # noqa: E402
from citygrid.kit.migrate import upgrade  # noqa: E402
from citygrid.kit.settings import sqlite_url  # noqa: E402
from citygrid.territory.locator import Locator  # noqa: E402

WARMUP = 10
TARGET_MS = 100.0


def prepare(url: str) -> tuple[str, str, str]:
    """The mini city, the dispatcher's session, a plain case and a hotline case."""
    upgrade(url)
    settings = live_settings(url)
    with unit_of_work(url) as session:
        import_mini_city(session)
        session.flush()
        created = accounts.create_account(
            session,
            SYSTEM,
            settings=settings,
            username=DISPATCHER.name,
            password=PASSWORD,
            role=DISPATCHER.role,
            scopes=DISPATCHER.scopes,
        )
        session.flush()
        cookie = sessions.start_session(
            session, settings, account_id=created.account.id, client_address=None
        )
        locator = Locator.from_session(session)
        plain = file_case(session, ZHANG, locator).ref
        hotline = file_case(
            session,
            DISPATCHER,
            locator,
            reporter_contact={"name": "王小明", "phone": "13800138000"},
        ).ref
    return cookie, plain, hotline


def timed(
    client: httpx.Client, count: int, send: Callable[[httpx.Client], httpx.Response], check: str
) -> list[float]:
    """Milliseconds of ``count`` requests after the warm-up; each answer must hold ``check``."""
    timings = []
    for index in range(count + WARMUP):
        started = time.perf_counter()
        response = send(client)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200 or check not in response.text:
            raise SystemExit(f"HTTP {response.status_code}: {response.text[:300]}")
        if index >= WARMUP:
            timings.append(elapsed)
    return timings


def report(name: str, timings: list[float]) -> None:
    """One line of figures."""
    print(
        f"{name}: p50 {percentile(timings, 0.50):.1f} ms, p90 {percentile(timings, 0.90):.1f} ms,"
        f" p99 {percentile(timings, 0.99):.1f} ms, max {max(timings):.1f} ms"
        f" (target p99 <= {TARGET_MS:g} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-case-page-") as root:
        url = sqlite_url(Path(root) / "citygrid.sqlite3")
        cookie, plain, hotline = prepare(url)
        with serve(create_app(live_settings(url))) as running:
            with httpx.Client(
                base_url=running.url,
                cookies={"citygrid_session": cookie},
                headers={"Accept-Language": "en"},
                timeout=30,
            ) as client:
                page = client.get(f"/cases/{hotline}")
                found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
                if found is None:
                    raise SystemExit("no CSRF token on the case page")
                token = found.group(1)
                without = timed(
                    client, args.requests, lambda c: c.get(f"/cases/{plain}"), "History"
                )
                masked = timed(
                    client, args.requests, lambda c: c.get(f"/cases/{hotline}"), "138****8000"
                )
                revealed = timed(
                    client,
                    args.requests,
                    lambda c: c.post(
                        f"/cases/{hotline}/reporter/reveal",
                        data={"purpose": "case-handling", "fields": ["phone"], "csrf_token": token},
                    ),
                    "13800138000",
                )
            with unit_of_work(url) as session:
                logged = session.scalar(select(func.count()).select_from(AuditEntry)) or 0

    print(f"requests: {args.requests} each (after {WARMUP} warm-up); access-log entries: {logged}")
    print(f"load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    report("case page, no reporter", without)
    report("case page, reporter masked (gateway read + audit entry)", masked)
    report("reveal the phone (POST, gateway + audit entry)", revealed)


if __name__ == "__main__":
    main()
