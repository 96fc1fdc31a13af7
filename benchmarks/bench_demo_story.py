"""The demo's death story and feeds: how long from a death's acceptance until civil affairs'
allowance is suspended, the grid worker has her task and the access log shows who was told
(the embedded worker in this process, SQLite), over several runs; and how fast the simulated
feeds publish through the real publish service.

    .venv/bin/python -m benchmarks.bench_demo_story [--db var/demo.sqlite3] [--runs 10] [--feed 200]

The demo file is copied first (each story run kills one of the seed grid's allowance
recipients). Target (issue 4): death accepted -> every reaction committed, p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from citygrid.demo.feeds import publish_next
from citygrid.demo.seed import DEFAULT_SEED as DEFAULT_DEMO_SEED
from citygrid.demo.story import run_death_story
from citygrid.kit import i18n
from citygrid.kit.db import get_session_factory
from citygrid.kit.settings import Settings, sqlite_url
from citygrid.kit.worker import worker_for


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, default=Path("var/demo.sqlite3"))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--feed", type=int, default=200, help="simulated events to publish")
    args = parser.parse_args()
    i18n.set_locale("en")
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "demo.sqlite3"
        shutil.copy(args.db, copy)
        url = sqlite_url(copy)
        factory = get_session_factory(url)
        worker = worker_for(Settings(database_url=url, demo_mode=True))
        worker.start()
        try:
            seconds: list[float] = []
            for _run in range(args.runs):
                story = run_death_story(factory, deadline=5.0)
                if not story.complete or story.seconds is None:
                    print("a run did not complete before its deadline")
                    continue
                seconds.append(story.seconds)
            started = time.perf_counter()
            published = 0
            for _event in range(args.feed):
                with factory() as session:
                    if publish_next(session, seed=DEFAULT_DEMO_SEED) is not None:
                        published += 1
                    session.commit()
            feed_seconds = time.perf_counter() - started
        finally:
            worker.stop()
    if seconds:
        print(
            f"death story, {len(seconds)} runs: death accepted -> allowance suspended, task and "
            f"told entries seen: p50 {statistics.median(seconds) * 1000:.0f} ms, "
            f"p99 {_percentile(seconds, 0.99) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms"
        )
    print(
        f"simulated feeds: {published} of {args.feed} events published in {feed_seconds:.1f} s "
        f"({published / feed_seconds:.0f} events/s, one per transaction, worker delivering)"
    )


if __name__ == "__main__":
    main()
