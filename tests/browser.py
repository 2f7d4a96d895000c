"""Headless Chromium for the tests that open pages (the atlas report, the documentation)."""

import os
import shutil
import subprocess

import pytest


def chromium():
    """The browser's path; a skip without one, unless `make test` requires it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    # `make test` installs Chromium and sets this, so there the check cannot be skipped
    if os.environ.get("PREIMAGE_REQUIRE_BROWSER"):
        raise AssertionError("no Chromium on PATH, and PREIMAGE_REQUIRE_BROWSER is set")
    pytest.skip("no Chromium (make test installs Debian's chromium)")


def dump_dom(browser, page):
    """The DOM of a local page after its scripts ran (5 s of virtual time)."""
    r = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            f"file://{page}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return r.stdout
