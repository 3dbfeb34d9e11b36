"""Hardening: a filter always ends. A catastrophic regular expression (``(a+)+$`` against long
URLs) is stopped at its budget with one line saying so, in ``report`` and in the browser, and the
browser answers keys throughout: Escape cancels a filter under way.

Each check runs the program as its own process (the browser in a real terminal, through tmux),
so a program that hangs fails the test instead of hanging the test run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inspector.store.query import STOPPED
from tests.helpers import ROOT, Tmux

pytestmark = pytest.mark.hardening

CATASTROPHIC = "~u '(a+)+$'"
FLOWS = 40


@pytest.fixture(scope="module")
def long_urls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flows whose URLs end in 3,000 a's and a '!': (a+)+$ backtracks on each without end."""
    folder = tmp_path_factory.mktemp("filters")
    xpm = "https://api.xero.com/practicemanager/3.0"
    entries = [
        {
            "startedDateTime": f"2026-11-30T10:00:{i:02d}.000Z",
            "time": 3,
            "request": {
                "method": "GET",
                "url": f"{xpm}/job.api/get/J{i}?q={'a' * 3000}!",
                "httpVersion": "HTTP/1.1",
                "headers": [],
            },
            "response": {
                "status": 200,
                "statusText": "OK",
                "httpVersion": "HTTP/1.1",
                "headers": [],
                "content": {"mimeType": "text/plain", "text": "x"},
            },
        }
        for i in range(FLOWS)
    ]
    har, db = folder / "long.har", folder / "long.db"
    har.write_text(
        json.dumps({"log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": entries}})
    )
    done = subprocess.run([sys.executable, "-m", "inspector", "import", str(har), "--db", str(db)], capture_output=True)
    assert done.returncode == 0, done.stderr
    return db


def test_report_stops_a_runaway_filter_with_one_line(long_urls: Path) -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "inspector", "report", "--db", str(long_urls), "--filter", CATASTROPHIC],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("report was still matching after 60 s")
    assert done.returncode == 2
    assert done.stderr == f"xero-inspector: error: {STOPPED}\n" and done.stdout == ""
    # The same filter, well written, runs: the budget stops runaways, not regular expressions.
    ok = subprocess.run(
        [sys.executable, "-m", "inspector", "report", "--db", str(long_urls), "--filter", "~u 'a{3000}!$'"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert ok.returncode in (0, 1) and f"{FLOWS} flows matching" in ok.stdout


def type_filter(tmux: Tmux, expr: str) -> None:
    # Keys sent together would reach the widget focused before the first was handled.
    for keys in ("/", "C-u", expr):
        tmux.keys(keys)
        time.sleep(0.3)
    tmux.keys("Enter")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_the_browser_answers_while_a_filter_runs_and_escape_cancels_it(long_urls: Path, tmp_path: Path) -> None:
    with Tmux(tmp_path) as tmux:
        tmux.run(f"{sys.executable} -m inspector tui --db {long_urls}")
        tmux.wait_for(f"{FLOWS} flows")
        type_filter(tmux, CATASTROPHIC)
        tmux.keys("Escape")  # at once: the first URL alone takes the whole budget
        shown = tmux.wait_for("filter cancelled (Esc)")
        assert f"{FLOWS} flows" in shown  # the list stays as it was
        type_filter(tmux, CATASTROPHIC)  # again, and let it run out of time
        shown = tmux.wait_for(STOPPED)
        assert f"{FLOWS} flows" in shown
        type_filter(tmux, "J7")  # typing still works, and so do filters
        tmux.wait_for("1 flow ")
        tmux.keys("C-q")
        tmux.wait_for(Tmux.DONE)
