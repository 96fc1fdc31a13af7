"""The subscriptions page in a real browser (Debian's Chromium, headless, via Playwright)
against a live server: a civil affairs officer signs in with a second factor, reads the
delivery log, and replays a dead delivery. Screenshots go to ``CITYGRID_SCREENSHOTS`` when it
is set, else to a pytest temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from citygrid.access import accounts, totp
from citygrid.exchange import outbox
from citygrid.exchange import service as exchange
from citygrid.exchange.webhooks import delivery, service
from citygrid.kit.db import get_session_factory, unit_of_work
from citygrid.kit.migrate import upgrade
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings
from tests.access.auth_factories import ADMIN, FAST_HASHING, PASSWORD
from tests.browser import PHONE, TABLET, open_page, require_chromium
from tests.exchange.story import PUBLIC_SECURITY, event, family
from tests.exchange.webhooks.conftest import CA_SYSTEM, subscribe_through_service
from tests.exchange.webhooks.receiver import Receiver
from tests.fixtures_territory import import_mini_city
from tests.live_server import serve

pytestmark = pytest.mark.browser

DEADLINE = 20.0


@dataclass
class Site:
    """The live server, the officer's TOTP secret, the subscription with a dead delivery."""

    url: str
    totp_secret: str
    subscription: str
    dead: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A SQLite file with a subscription whose log holds delivered and dead deliveries, and
    the app serving it on a free local port."""
    require_chromium()
    from citygrid.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('webhooks-live') / 'citygrid.sqlite3'}"
    upgrade(url)
    settings = Settings(database_url=url, demo_mode=True, **FAST_HASHING)
    receiver = Receiver().start()
    with unit_of_work(url) as session:
        import_mini_city(session)
        created = accounts.create_account(
            session,
            ADMIN,
            settings=settings,
            username="ca-officer",
            password=PASSWORD,
            role="department_officer",
            scopes=("440104",),
            department="civil-affairs",
            display_name="民政局 王科长",
        )
        subscription = subscribe_through_service(session, settings, receiver.url)
        ref = subscription.ref
        receiver.challenge = "missing"
        subscribe_through_service(session, settings, receiver.url + "/moves", topic="move_out")
        people = [family(session).head for _ in range(3)]
        exchange.publish_event(session, PUBLIC_SECURITY, data=event("death", people[0]))
    factory = get_session_factory(url)
    with delivery.Sender(settings) as sender:
        outbox.drain(factory, worker_id="setup")
        receiver.status = 503
        delivery.drain(factory, sender, worker_id="setup", max_attempts=1)
        receiver.status = 200
        with unit_of_work(url) as session:
            for person in people[1:]:
                exchange.publish_event(
                    session, PUBLIC_SECURITY, data=event("death", person.id_number)
                )
        outbox.drain(factory, worker_id="setup")
        delivery.drain(factory, sender, worker_id="setup", now=utcnow() + timedelta(seconds=1))
    with unit_of_work(url) as session:
        [dead] = [d for d in service.delivery_log(session, CA_SYSTEM, ref=ref) if d.state == "dead"]
    try:
        with serve(create_app(settings)) as running:
            yield Site(running.url, str(created.totp_secret), ref, dead.id)
    finally:
        receiver.stop()


def test_an_officer_replays_a_dead_delivery_in_the_browser(
    site: Site, chromium: Any, screens: Path
) -> None:
    page, watch = open_page(chromium, viewport=TABLET)
    page.goto(f"{site.url}/signin?next=/exchange/subscriptions/{site.subscription}")
    page.fill("#username", "ca-officer")
    page.fill("#password", PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.fill("#otp", totp.code_at(site.totp_secret, totp.time_step(utcnow())))
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url(f"**/exchange/subscriptions/{site.subscription}")

    dead_row = page.locator(f'tr[data-delivery="{site.dead}"]')
    assert dead_row.get_attribute("data-state") == "dead"
    assert page.locator('tr[data-state="delivered"]').count() == 2
    assert page.locator('.webhook-subscriptions tr[data-state="failed"]').count() == 1
    page.screenshot(path=str(screens / "webhooks-tablet.png"), full_page=True)

    dead_row.locator("button").click()
    page.wait_for_selector("#replay-report")
    assert page.locator(f'tr[data-delivery="{site.dead}"]').get_attribute("data-state") == "pending"
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(screens / "webhooks-phone.png"), full_page=True)
    watch.assert_clean()
