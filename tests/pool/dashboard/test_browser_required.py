"""`make test` runs the browser tests or stops and says what to install (issue 11, finding 13):
without Chromium they used to be skipped, and the run passed with the dashboard untested."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# Each module that drives Chromium takes its marks from browser_support.browser_marks.
BROWSER_TESTS = [
    f"tests/pool/dashboard/{name}.py"
    for name in ("test_browser", "test_browser_queue", "test_browser_platforms")
]


def run_browser_tests(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *BROWSER_TESTS],
        cwd=ROOT,
        env={**os.environ, "WARMPOOL_CHROMIUM": "/nonexistent/chromium", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_chromium_the_browser_tests_stop_the_run_and_name_what_to_install() -> None:
    result = run_browser_tests()

    assert result.returncode != 0, result.stdout
    assert "need Chromium at /nonexistent/chromium" in result.stdout
    assert "apt-get install chromium" in result.stdout
    assert "passed" not in result.stdout.splitlines()[-1]


def test_skipping_the_browser_tests_is_an_explicit_choice() -> None:
    result = run_browser_tests(WARMPOOL_SKIP_BROWSER_TESTS="1")

    assert result.returncode == 0, result.stdout
    assert "skipped" in result.stdout.splitlines()[-1]
