"""The city's calendar day: dates in citygrid (births, deaths, residences, consents, ...)
are local dates in China Standard Time, whatever zone the server runs in."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from citygrid.kit import models

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
"""Fixed UTC+8 (no daylight saving since 1991, so no tz database is needed)."""


def local_date(moment: datetime) -> date:
    """The date of a moment in China Standard Time."""
    return moment.astimezone(CHINA_STANDARD_TIME).date()


def local_today() -> date:
    """Today in China Standard Time: from 16:00 UTC it is already tomorrow there, so a
    server's ``date.today()`` would call a death reported at 00:30 in Guangzhou future."""
    return models.utcnow().astimezone(CHINA_STANDARD_TIME).date()
