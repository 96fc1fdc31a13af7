"""Background work of the demo: the simulated department feeds (``demo.feeds``) and the
simulated case feed (``demo.cases``), only when both ``CITYGRID_DEMO_MODE`` and
``CITYGRID_DEMO_FEEDS`` are on (``citygrid demo`` sets the second unless ``--no-feeds``)."""

from __future__ import annotations

from citygrid.kit.settings import Settings
from citygrid.kit.worker import PeriodicTask

FEEDS_TASK = "demo.feeds"
CASES_TASK = "demo.cases"


def periodic_tasks(settings: Settings) -> list[PeriodicTask]:
    """The feeds tasks in demo mode with feeds on; nothing otherwise."""
    if not (settings.demo_mode and settings.demo_feeds):
        return []
    from citygrid.demo.case_feed import CASE_FEED_INTERVAL, DemoCaseFeed
    from citygrid.demo.feeds import DemoFeed

    return [
        PeriodicTask(FEEDS_TASK, settings.demo_feed_interval_seconds, DemoFeed(settings.demo_seed)),
        PeriodicTask(CASES_TASK, CASE_FEED_INTERVAL, DemoCaseFeed(settings.demo_seed)),
    ]
