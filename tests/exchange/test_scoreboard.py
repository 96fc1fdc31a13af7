"""The sharing scoreboard (the mayor's rule: no data, no funding) and the catalogue page,
from hand-built publications and life events."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.exchange.models import LifeEventRecord, Publication
from citygrid.exchange.scoreboard import scoreboard, subscriptions_served
from citygrid.exchange.webhooks.models import Subscription, SubscriptionState

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def _publish(
    session: Session,
    dataset: str,
    department: str,
    *,
    days_ago: float,
    received: int = 10,
    rejected: int = 0,
    now: datetime = NOW,
) -> None:
    session.add(
        Publication(
            dataset=dataset,
            department=department,
            publisher="test",
            mode="valid_rows",
            received=received,
            created=received - rejected,
            updated=0,
            rejected=rejected,
            published_at=now - timedelta(days=days_ago),
        )
    )
    session.flush()


def _event(
    session: Session,
    department: str,
    *,
    lag_seconds: float,
    days_ago: float = 1,
    now: datetime = NOW,
) -> None:
    received_at = now - timedelta(days=days_ago)
    key = f"{department}-{lag_seconds}-{days_ago}"
    session.add(
        LifeEventRecord(
            type="death",
            department=department,
            publisher="test",
            source_event_id=key,
            payload_hash=hashlib.sha256(key.encode()).hexdigest(),
            occurred_at=received_at - timedelta(seconds=lag_seconds),
            received_at=received_at,
            applied=True,
        )
    )
    session.flush()


def _by_slug(session: Session, **kwargs: object) -> dict:
    board = scoreboard(session, now=NOW, **kwargs)  # type: ignore[arg-type]
    return {score.slug: score for score in board.departments}


def test_a_department_behind_its_promised_frequency_is_flagged(db_session: Session) -> None:
    _publish(db_session, "pensions", "social-security", days_ago=2)  # monthly: fresh
    _publish(db_session, "subsistence_allowances", "civil-affairs", days_ago=40)  # monthly: stale
    _publish(db_session, "tenancies", "rental-housing", days_ago=6.5)  # weekly: fresh
    _publish(db_session, "criminal_records", "public-security", days_ago=0.5)  # daily: fresh
    # A batch whose every row was rejected does not count as published.
    _publish(db_session, "marital_statuses", "family-planning", days_ago=1, rejected=10)

    scores = _by_slug(db_session)

    civil = scores["civil-affairs"]
    assert civil.behind and civil.reasons == ["stale"]
    assert (civil.datasets_promised, civil.datasets_published, civil.datasets_fresh) == (1, 1, 0)
    assert civil.datasets[0].state == "stale" and civil.datasets[0].age_days == 40
    family = scores["family-planning"]
    assert family.behind and family.reasons == ["never_published"]
    for kept in ("social-security", "rental-housing", "public-security"):
        assert not scores[kept].behind, kept
        assert scores[kept].datasets_fresh == 1
    water = scores["water-affairs"]
    assert (water.datasets_promised, water.behind) == (0, False)
    # Behind first.
    board = scoreboard(db_session, now=NOW)
    assert [s.behind for s in board.departments] == sorted(
        (s.behind for s in board.departments), reverse=True
    )
    assert {s.slug for s in board.departments} >= {
        "public-security",
        "family-planning",
        "rental-housing",
        "civil-affairs",
        "social-security",
        "housing-construction",
        "water-affairs",
        "market-regulation",
    }


def test_median_lag_of_life_events_within_the_window(db_session: Session) -> None:
    for lag in (10, 20, 30, 100):  # even count: the mean of 20 and 30
        _event(db_session, "public-security", lag_seconds=lag)
    for lag in (1000, 5, 7):  # odd count: the middle one
        _event(db_session, "family-planning", lag_seconds=lag)
    _event(db_session, "family-planning", lag_seconds=99999, days_ago=200)  # outside 90 days

    scores = _by_slug(db_session)

    assert scores["public-security"].median_lag_seconds == pytest.approx(25, abs=0.01)
    assert scores["public-security"].events_published == 4
    assert scores["family-planning"].median_lag_seconds == pytest.approx(7, abs=0.01)
    assert scores["family-planning"].events_published == 3
    assert scores["civil-affairs"].median_lag_seconds is None
    # A wider window takes the old event in: the middle of four moves up.
    wide = _by_slug(db_session, window_days=365)
    assert wide["family-planning"].median_lag_seconds == pytest.approx(503.5, abs=0.01)


def test_rejected_row_rate(db_session: Session) -> None:
    _publish(db_session, "pensions", "social-security", days_ago=3, received=100, rejected=5)
    _publish(db_session, "pensions", "social-security", days_ago=1, received=50)
    _publish(db_session, "pensions", "social-security", days_ago=120, received=50, rejected=50)

    score = _by_slug(db_session)["social-security"]

    assert (score.rows_received, score.rows_rejected) == (150, 5)
    assert score.rejected_rate == pytest.approx(5 / 150, abs=1e-4)
    assert _by_slug(db_session)["civil-affairs"].rejected_rate is None


def _subscribe(session: Session, topic: str, *, state: SubscriptionState, days_left: int) -> None:
    session.add(
        Subscription(
            ref=f"whs_{hashlib.sha256(f'{topic}{state}{days_left}'.encode()).hexdigest()[:16]}",
            department="civil-affairs",
            created_by="civil-affairs",
            scopes=["440104"],
            topic=topic,
            callback_url="https://civil-affairs.example/hook",
            secret_encrypted="-",
            state=state,
            lease_seconds=86400,
            expires_at=NOW + timedelta(days=days_left),
        )
    )
    session.flush()


def test_active_subscriptions_are_counted_for_the_owner_of_each_topic(
    db_session: Session,
) -> None:
    assert subscriptions_served(db_session, now=NOW) == {}
    active = SubscriptionState.ACTIVE
    for topic in ("death", "birth", "pensions", "*"):
        _subscribe(db_session, topic, state=active, days_left=30)
    _subscribe(db_session, "marriage_status_changed", state=active, days_left=-1)  # expired
    _subscribe(db_session, "tenancy_started", state=SubscriptionState.FAILED, days_left=30)

    served = subscriptions_served(db_session, now=NOW)

    # "*" serves every department that owns a topic, once.
    assert served["public-security"] == 3 and served["social-security"] == 2
    assert served["family-planning"] == 1 and served["rental-housing"] == 1
    assert _by_slug(db_session)["public-security"].subscriptions_served == 3


def test_the_scoreboard_api_and_page(db_session: Session, client: TestClient) -> None:
    now = datetime.now(UTC)
    _publish(db_session, "subsistence_allowances", "civil-affairs", days_ago=45, now=now)
    _publish(
        db_session, "pensions", "social-security", days_ago=1, now=now, received=200, rejected=10
    )
    _event(db_session, "public-security", lag_seconds=42, days_ago=0.1, now=now)

    answer = client.get("/api/v1/exchange/scoreboard")
    page = client.get("/exchange/scoreboard")
    chinese = client.get("/exchange/scoreboard", headers={"Accept-Language": "zh-CN"})
    refused = client.get("/api/v1/exchange/scoreboard?window_days=0")

    assert answer.status_code == 200
    scores = {s["slug"]: s for s in answer.json()["departments"]}
    assert scores["civil-affairs"]["behind"] is True
    assert scores["social-security"]["behind"] is False
    assert scores["social-security"]["rejected_rate"] == 0.05
    assert scores["public-security"]["median_lag_seconds"] == pytest.approx(42, abs=0.01)
    assert refused.status_code == 422
    assert "window_days" in refused.text
    assert page.status_code == 200
    assert 'data-department="civil-affairs" data-behind="true"' in page.text
    assert 'data-department="social-security" data-behind="false"' in page.text
    assert "Behind" in page.text and "42 s" in page.text
    assert "5.00%" in page.text
    assert chinese.status_code == 200 and "共享" in chinese.text


def test_the_catalogue_page_lists_datasets_fields_and_departments(
    db_session: Session, client: TestClient
) -> None:
    _publish(
        db_session,
        "pensions",
        "social-security",
        days_ago=0,
        now=datetime(2026, 12, 1, 8, 30, tzinfo=UTC),
    )

    page = client.get("/exchange/catalogue")

    assert page.status_code == 200
    html = page.text
    for slug in (
        "subsistence_allowances",
        "pensions",
        "marital_statuses",
        "tenancies",
        "criminal_records",
    ):
        assert f'data-dataset="{slug}"' in html
    assert 'data-owner="civil-affairs">Civil Affairs Bureau' in html
    assert 'data-classification="confidential">Not shared' in html
    assert "Monthly" in html and "Quarterly" in html
    assert 'data-field="allowance_amount"' not in html  # fields by their dataset name
    assert 'data-field="amount"' in html and ">allowance<" in html
    assert "2026-12-01 08:30 UTC" in html
    assert 'data-member="water-affairs"' in html
    assert 'data-event-type="death"' in html
