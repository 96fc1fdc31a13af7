"""The sharing scoreboard (the mayor's rule: no data, no funding): per member department,
the datasets it promised against those it published and how fresh each is against its
promised frequency, the median lag of its life events, its rejected-row rate and the
subscriptions its topics serve; a department with a promised dataset stale or never
published is flagged as behind. Definitions: docs/exchange.md, "The scoreboard"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from citygrid.exchange import repository
from citygrid.exchange.catalogue import Catalogue, default_catalogue
from citygrid.exchange.schemas import DatasetStanding, DepartmentScore, ScoreboardRead
from citygrid.kit.errors import ValidationFailed
from citygrid.kit.i18n import _, localised
from citygrid.kit.models import utcnow

DEFAULT_WINDOW_DAYS = 90
MAX_WINDOW_DAYS = 3660

FRESH = "fresh"
STALE = "stale"
NEVER = "never"


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def subscriptions_served(
    session: Session, *, now: datetime, catalogue: Catalogue | None = None
) -> dict[str, int]:
    """Per department, the active webhook subscriptions to its topics: the life event types
    it owns and its datasets; a subscription to every topic (``*``) serves every department
    that owns one."""
    from citygrid.exchange.webhooks import repository as webhooks_repository

    catalogue = catalogue or default_catalogue()
    owners = {name: spec.owner for name, spec in catalogue.events.items()}
    owners.update({slug: spec.owner for slug, spec in catalogue.datasets.items()})
    served: dict[str, int] = {}
    for topic, count in webhooks_repository.active_topic_counts(session, now=now).items():
        if topic == "*":
            departments = set(owners.values())
        else:
            departments = {owners[topic]} if topic in owners else set()
        for owner in departments:
            served[owner] = served.get(owner, 0) + count
    return served


def scoreboard(
    session: Session,
    *,
    now: datetime | None = None,
    window_days: int = DEFAULT_WINDOW_DAYS,
    catalogue: Catalogue | None = None,
) -> ScoreboardRead:
    """Every member department's standing at ``now``; lags and rejected rows over the last
    ``window_days`` days. Departments behind their promise first, then by slug."""
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise ValidationFailed.one(
            "window_days", _("must be between 1 and %(max)d") % {"max": MAX_WINDOW_DAYS}
        )
    catalogue = catalogue or default_catalogue()
    now = _aware(now or utcnow())
    since = now - timedelta(days=window_days)
    last = {slug: _aware(at) for slug, at in repository.last_publications(session).items()}
    rows = repository.publication_rows(session, since=since)
    lags = repository.event_lags(session, since=since)
    served = subscriptions_served(session, now=now, catalogue=catalogue)
    departments: list[DepartmentScore] = []
    for member in repository.list_members(session):
        standings = []
        for spec in catalogue.datasets.values():
            if spec.owner != member.slug:
                continue
            published_at = last.get(spec.slug)
            age = None if published_at is None else (now - published_at).total_seconds() / 86400
            state = NEVER if age is None else FRESH if age <= spec.max_age_days else STALE
            standings.append(
                DatasetStanding(
                    slug=spec.slug,
                    name=localised(spec.name_zh, spec.name_en),
                    frequency=spec.frequency,
                    max_age_days=spec.max_age_days,
                    last_published_at=published_at,
                    age_days=None if age is None else round(max(age, 0.0), 2),
                    state=state,
                )
            )
        received, rejected = rows.get(member.slug, (0, 0))
        events, median = lags.get(member.slug, (0, None))
        reasons = [
            reason
            for reason, state in (("never_published", NEVER), ("stale", STALE))
            if any(standing.state == state for standing in standings)
        ]
        departments.append(
            DepartmentScore(
                slug=member.slug,
                name=localised(member.name_zh, member.name_en),
                datasets_promised=len(standings),
                datasets_published=sum(s.state != NEVER for s in standings),
                datasets_fresh=sum(s.state == FRESH for s in standings),
                datasets=standings,
                events_published=events,
                median_lag_seconds=None if median is None else round(median, 3),
                rows_received=received,
                rows_rejected=rejected,
                rejected_rate=round(rejected / received, 4) if received else None,
                subscriptions_served=served.get(member.slug, 0),
                behind=bool(reasons),
                reasons=reasons,
            )
        )
    departments.sort(key=lambda score: (not score.behind, score.slug))
    return ScoreboardRead(generated_at=now, window_days=window_days, departments=departments)
