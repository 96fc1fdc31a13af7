"""Background work of the demo: the simulated department feeds (``demo.feeds``), only when
both ``CITYGRID_DEMO_MODE`` and ``CITYGRID_DEMO_FEEDS`` are on (``citygrid demo`` sets the
second unless ``--no-feeds``)."""

from __future__ import annotations

from citygrid.kit.settings import Settings
from citygrid.kit.worker import PeriodicTask

FEEDS_TASK = "demo.feeds"


def periodic_tasks(settings: Settings) -> list[PeriodicTask]:
    """The feeds task in demo mode with feeds on; nothing otherwise."""
    if not (settings.demo_mode and settings.demo_feeds):
        return []
    from citygrid.demo.feeds import DemoFeed

    return [
        PeriodicTask(FEEDS_TASK, settings.demo_feed_interval_seconds, DemoFeed(settings.demo_seed))
    ]
