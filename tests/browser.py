"""Debian's Chromium, driven by Playwright, for the browser tests: where it is, how it is
started, pages that record what went wrong and never reach another host. The fixtures
``chromium`` (one browser for the run) and ``screens`` (where screenshots go:
``CITYGRID_SCREENSHOTS`` when set, else a temporary directory) live in tests/conftest.py.
Without /usr/bin/chromium browser tests are skipped, except in CI, where they fail.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TABLET = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
DEADLINE_SECONDS = 20.0
"""How long a page may take to show what a test waits for."""


def require_chromium() -> None:
    """Skip the test when Chromium is missing (fail it in CI)."""
    if CHROMIUM.exists():
        return
    if IN_CI:
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


@dataclass
class Watch:
    """What went wrong in the page: console errors, script errors, failed or outside requests."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.console_errors == []
        assert self.page_errors == []
        assert self.failed_requests == []
        assert self.outside_requests == []


def open_page(
    chromium: Any, *, viewport: dict[str, int], javascript: bool = True
) -> tuple[Any, Watch]:
    """A fresh page (no cookies) that records problems and never reaches another host."""
    context = chromium.new_context(
        viewport=viewport, java_script_enabled=javascript, locale="zh-CN", device_scale_factor=1
    )
    watch = Watch()

    def guard(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in LOCAL_HOSTS or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            watch.outside_requests.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and watch.console_errors.append(m.text))
    page.on("pageerror", lambda error: watch.page_errors.append(str(error)))

    def failed(request: Any) -> None:
        # A navigation cancels what the previous page still loaded (the icon): not a fault.
        if request.failure != "net::ERR_ABORTED":
            watch.failed_requests.append(f"{request.url} {request.failure}")

    def answered(response: Any) -> None:
        if response.status >= 400:
            watch.failed_requests.append(f"{response.url} HTTP {response.status}")

    page.on("requestfailed", failed)
    page.on("response", answered)
    return page, watch
