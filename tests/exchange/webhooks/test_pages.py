"""The subscriptions page of a department officer: subscriptions and their state, the
delivery log, and replay through a form that needs the session's CSRF token."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from citygrid.exchange import service as exchange
from citygrid.exchange.webhooks import delivery
from citygrid.exchange.webhooks.models import Subscription, WebhookDelivery
from citygrid.kit.i18n import set_locale
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings
from tests.access.auth_factories import (
    BROWSER,
    PASSWORD,
    csrf_in,
    current_code,
    fast_settings_fixture,  # noqa: F401 (fixture)
    make_account,
    post_signin,
    request_scoped_app_fixture,  # noqa: F401 (fixture)
    sign_in,
)
from tests.exchange.story import PUBLIC_SECURITY, event, family
from tests.exchange.webhooks.conftest import subscribe_through_service
from tests.exchange.webhooks.receiver import Receiver


@pytest.fixture(autouse=True)
def _english() -> None:
    set_locale("en")


TOTP: dict[str, str] = {}


def officer_signs_in(client: TestClient, username: str) -> None:
    """Password, then the authenticator's code (officers have a second factor)."""
    first = post_signin(client, username=username, password=PASSWORD)
    second = client.post(
        "/signin",
        data={"csrf_token": csrf_in(first.text), "otp": current_code(TOTP[username])},
        headers=BROWSER,
        follow_redirects=False,
    )
    assert second.status_code == 303, second.text


def post_renew_form(client: TestClient, ref: str, csrf_token: str) -> Response:
    """Press the subscription's renew button (the form posts the page's CSRF token)."""
    return client.post(
        f"/exchange/subscriptions/{ref}/renew",
        data={"csrf_token": csrf_token},
        headers=BROWSER,
        follow_redirects=False,
    )


@pytest.fixture
def dead_delivery(
    city: Session,
    settings: Settings,
    receiver: Receiver,
    send: Callable[..., delivery.RoundReport],
) -> tuple[str, WebhookDelivery]:
    """A civil affairs subscription whose only delivery died (the receiver answered 503)."""
    for username, department in (
        ("ca-officer", "civil-affairs"),
        ("ps-officer", "public-security"),
    ):
        created = make_account(
            city,
            settings,
            username,
            role="department_officer",
            department=department,
            scopes=("440104",),
        )
        TOTP[username] = str(created.totp_secret)
    make_account(city, settings, "zhang")
    subscription = subscribe_through_service(city, settings, receiver.url)
    home = family(city)
    exchange.publish_event(city, PUBLIC_SECURITY, data=event("death", home.head))
    receiver.status = 503
    send(now=utcnow() + timedelta(seconds=1), max_attempts=1)
    [dead] = city.scalars(select(WebhookDelivery)).all()
    assert dead.state == "dead"
    return subscription.ref, dead


def test_an_officer_sees_the_subscriptions_and_replays_a_dead_delivery(
    city: Session,
    client: TestClient,
    receiver: Receiver,
    dead_delivery: tuple[str, WebhookDelivery],
    send: Callable[..., delivery.RoundReport],
) -> None:
    ref, dead = dead_delivery
    officer_signs_in(client, "ca-officer")

    listing = client.get("/exchange/subscriptions", headers=BROWSER)
    assert listing.status_code == 200
    assert f'data-subscription="{ref}" data-state="active"' in listing.text
    page = client.get(f"/exchange/subscriptions/{ref}", headers=BROWSER)
    assert f'data-delivery="{dead.uid}" data-state="dead"' in page.text
    assert "503" in page.text
    assert dead.subject_ref in page.text
    # Never a body: no name or ID number on the page.
    assert dead.payload["subject"]["id_number"] not in page.text

    refused = client.post(
        f"/exchange/subscriptions/{ref}/replay",
        data={"delivery": dead.uid},
        headers=BROWSER,
        follow_redirects=False,
    )
    assert refused.status_code == 403
    city.expire_all()
    assert city.get(WebhookDelivery, dead.id).state == "dead"

    replayed = client.post(
        f"/exchange/subscriptions/{ref}/replay",
        data={"delivery": dead.uid, "csrf_token": csrf_in(page.text)},
        headers=BROWSER,
        follow_redirects=False,
    )
    assert replayed.status_code == 303
    assert replayed.headers["location"] == f"/exchange/subscriptions/{ref}?replayed=1"
    after = client.get(replayed.headers["location"], headers=BROWSER)
    assert "1 deliveries will be sent again" in after.text
    receiver.status = 200
    send()
    assert [item.delivery for item in receiver.received] == [dead.uid]


def test_other_departments_and_grid_workers_do_not_see_it(
    city: Session, client: TestClient, dead_delivery: tuple[str, WebhookDelivery]
) -> None:
    ref, dead = dead_delivery
    officer_signs_in(client, "ps-officer")
    assert ref not in client.get("/exchange/subscriptions", headers=BROWSER).text
    assert client.get(f"/exchange/subscriptions/{ref}", headers=BROWSER).status_code == 404
    token = csrf_in(client.get("/exchange/subscriptions", headers=BROWSER).text)
    answer = client.post(
        f"/exchange/subscriptions/{ref}/replay",
        data={"delivery": dead.uid, "csrf_token": token},
        headers=BROWSER,
        follow_redirects=False,
    )
    assert answer.status_code == 404
    city.expire_all()
    assert city.get(WebhookDelivery, dead.id).state == "dead"

    client.cookies.clear()
    sign_in(client, "zhang")
    assert client.get("/exchange/subscriptions", headers=BROWSER).status_code == 403


def test_an_officer_renews_an_expired_lease_from_the_page(
    city: Session,
    client: TestClient,
    receiver: Receiver,
    dead_delivery: tuple[str, WebhookDelivery],
) -> None:
    ref, _dead = dead_delivery
    city.execute(
        update(Subscription)
        .where(Subscription.ref == ref)
        .values(expires_at=utcnow() - timedelta(days=1))
    )
    officer_signs_in(client, "ca-officer")
    page = client.get(f"/exchange/subscriptions/{ref}", headers=BROWSER)
    assert 'data-lease="expired"' in page.text
    assert "Renew: challenge the callback again" in page.text

    forged = client.post(
        f"/exchange/subscriptions/{ref}/renew", headers=BROWSER, follow_redirects=False
    )
    assert forged.status_code == 403
    renewed = post_renew_form(client, ref, csrf_in(page.text))

    assert renewed.status_code == 303
    assert renewed.headers["location"] == f"/exchange/subscriptions/{ref}?renewed=1"
    after = client.get(renewed.headers["location"], headers=BROWSER)
    assert 'data-lease="active"' in after.text
    assert "the subscription is renewed" in after.text
    assert len(receiver.challenges) == 2

    receiver.challenge = "wrong"
    failed = post_renew_form(client, ref, csrf_in(after.text))
    assert failed.status_code == 422
    assert "callback_url" in failed.text and "challenge_mismatch" in failed.text
    assert (
        'data-lease="active"' in client.get(f"/exchange/subscriptions/{ref}", headers=BROWSER).text
    )


def test_another_department_cannot_renew_and_sees_no_button(
    city: Session, client: TestClient, dead_delivery: tuple[str, WebhookDelivery]
) -> None:
    ref, _dead = dead_delivery
    officer_signs_in(client, "ps-officer")
    token = csrf_in(client.get("/exchange/subscriptions", headers=BROWSER).text)

    answer = post_renew_form(client, ref, token)

    assert answer.status_code == 404
    assert "Renew: challenge" not in client.get("/exchange/subscriptions", headers=BROWSER).text
