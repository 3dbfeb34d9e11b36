"""Hardening: text from traffic never drives the terminal.

A crafted recording (``tests/hostile.py``) puts escape sequences, a C1 CSI, a bidi override and
console markup in every field a person is shown. Every CLI output, the browser's every tab (Pilot),
and once the browser in a real terminal (tmux, its raw output captured with pipe-pane) must show
them as visible characters: no ESC, C1 or override byte leaves the process, no markup is applied,
and the terminal's title stays what it was.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import TabbedContent

from inspector.ingest.record import FlowRecord
from inspector.ingest.row import FlowRow
from inspector.proxy.writer import flow_line
from inspector.store.database import open_for_reading
from inspector.store.summary import render, summarize
from inspector.tui.app import InspectorApp
from inspector.tui.orgs import OrganisationsScreen
from inspector.utils.text import safe
from tests.helpers import ROOT, WAIT, Tmux
from tests.hostile import PAYLOAD, TITLE, XML_PAYLOAD, leaks, recording

pytestmark = pytest.mark.hardening


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return recording(tmp_path_factory.mktemp("hostile"))


def cli(*args: str) -> bytes:
    done = subprocess.run([sys.executable, "-m", "inspector", *args], capture_output=True, timeout=120, cwd=ROOT)
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    return done.stdout + done.stderr


def test_every_cli_output_shows_the_escapes_as_text(hostile_db: Path, tmp_path: Path) -> None:
    db = str(hostile_db)
    out: dict[str, bytes] = {}
    for fmt in ("text", "markdown", "json", "junit", "html"):
        out[f"report {fmt}"] = cli("report", "--db", db, "--format", fmt)
    for fmt in ("har", "curl"):
        out[f"export {fmt}"] = cli("export", "--db", db, "--format", fmt)
    out["diff"] = cli("diff", "2", "4", "--db", db, "--full")
    out["diff --unified"] = cli("diff", "2", "4", "--db", db, "--unified")
    out["report --filter"] = cli("report", "--db", db, "--filter", f"~u '{PAYLOAD}'")  # a bad filter, said back
    copy = tmp_path / "copy.db"
    shutil.copy(hostile_db, copy)
    out["revalidate"] = cli("revalidate", "--db", str(copy))
    out["replay"] = cli("replay", "2", "4", "--db", str(copy), "--to", "http://127.0.0.1:9", "--token", "t")
    body = tmp_path / f"job{PAYLOAD.replace('/', '')}.xml"  # the file's name is text from a file too
    body.write_text(f"<Job><Name>{XML_PAYLOAD}</Name><Nope>{XML_PAYLOAD}</Nope></Job>")
    out["validate"] = cli("validate", "-e", "PUT https://api.xero.com/practicemanager/3.0/job.api/update", str(body))
    assert {k: leaks(v) for k, v in out.items() if leaks(v)} == {}
    # The payload is still there to read, as pictures (or escapes in JSON and curl's $'...').
    assert "␛]0;PWNED-TITLE␇".encode() in out["report text"]
    assert b"\\u001b]0;PWNED-TITLE\\u0007" in out["export har"]
    assert b"$'" in out["export curl"] and b"\\x1b]0;PWNED-TITLE\\x07" in out["export curl"]
    assert b"\\u202e[bold red]fake[/]" in out["diff"]  # markup shown, not applied


def test_the_proxy_line_and_the_demo_summary_show_the_escapes_as_text(hostile_db: Path) -> None:
    rec = FlowRecord(0.0, "GET", f"https://api.xero.com/connections?{PAYLOAD}", "HTTP/1.1", (), None)
    row = FlowRow(started_at=0.0, url=rec.url, method=PAYLOAD, outcome="api-error", api_error=PAYLOAD, status=200)
    line = flow_line(1, row)
    assert not leaks(line.encode()) and "␛]0;PWNED-TITLE" in line
    console = Console(record=True, width=300, color_system=None)
    with closing(open_for_reading(hostile_db)) as conn:
        render(summarize(conn), console)
    shown = console.export_text()
    assert not leaks(shown.encode()) and "␛]0;PWNED-TITLE" in shown  # the organisation's name


def screen_text(app: InspectorApp) -> str:
    return "\n".join(s.text for s in app.screen._compositor.render_strips())


@pytest.mark.anyio
async def test_every_tab_of_the_browser_shows_the_escapes_as_text(hostile_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "hostile.db"
    shutil.copy(hostile_db, db)
    app = InspectorApp(db)
    seen: dict[str, str] = {}
    async with app.run_test(size=(200, 50)) as pilot:
        for flow_id in (2, 3, 4, 5):
            await pilot.pause()
            app.action_goto(flow_id)
            deadline = time.monotonic() + WAIT
            while app.detail.flow is None or app.detail.flow.id != flow_id:
                assert time.monotonic() < deadline, f"flow {flow_id} never showed"
                await pilot.pause(0.05)
            tabs = app.detail.query_one("#tabs", TabbedContent)
            for tab in ("request", "response", "findings", "info"):
                tabs.active = tab
                await pilot.pause(0.2)
                seen[f"#{flow_id} {tab}"] = screen_text(app)
        app.action_goto(2)
        await pilot.pause(0.3)
        await pilot.press("e")  # the request editor: the URL, the header and its value
        await pilot.pause(0.5)
        seen["editor"] = screen_text(app)
        await pilot.press("escape")
        await pilot.pause(0.2)
        app.notify(f"a toast {PAYLOAD}")
        await pilot.pause(0.2)
        seen["toast"] = screen_text(app)
        app.push_screen(OrganisationsScreen(app.reader))
        await pilot.pause(0.5)
        seen["organisations"] = screen_text(app)
    assert {k: leaks(v.encode()) for k, v in seen.items() if leaks(v.encode())} == {}
    # Where each field shows, its payload is there as pictures: read, not obeyed.
    assert "␛]0;PWNED-TITLE" in seen["#2 request"]  # the URL, the header's name and value
    assert "␛]0;PWNED-TITLE" in seen["#2 response"]  # the reason phrase
    assert "␛]0;PWNED-TITLE" in seen["#4 response"]  # a text body, line by line
    assert "␛]0;PWNED-TITLE" in seen["#5 request"]  # the transport error
    assert "␛]0;PWNED-TITLE" in seen["#2 info"]  # the organisation and the comment
    assert "␛]0;PWNED-TITLE" in seen["toast"]
    assert "␛]0;PWNED-TITLE" in seen["editor"] and "shown as pictures" in seen["editor"]
    assert "[bold red]fake[/]" in seen["organisations"]  # markup shown as typed, not applied
    assert "\\u202e" in seen["#2 info"] and TITLE in seen["#2 request"]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_the_browser_in_a_real_terminal_sends_it_no_escape_from_traffic(hostile_db: Path, tmp_path: Path) -> None:
    with Tmux(tmp_path) as tmux:
        tmux.record()  # every byte the pane receives
        title = tmux.title()
        tmux.run(f"{sys.executable} -m inspector tui --db {hostile_db}")
        tmux.wait_for("transport-error")
        tmux.keys("Up", "Up", "Up")  # flow #2: the Xero error, the reason phrase
        tmux.wait_for("Xero says:")
        tmux.keys("2")
        response = tmux.wait_for("HTTP/1.1 200 OK ␛]0;PWNED-TITLE␇␛]52;c;cHduZWQ=␇␛[2J\\x9b31m\\u202e[bold red]")
        for keys in ("1", "3", "4", "o", "Escape"):
            tmux.keys(keys)
            time.sleep(0.5)
        tmux.keys("C-q")  # quits whatever has the focus
        tmux.wait_for(Tmux.DONE)
        after = tmux.title()
    raw = tmux.raw.read_bytes()
    assert len(raw) > 10_000  # the browser did draw, through this pane
    assert after == title and TITLE not in after
    assert "␛]0;PWNED-TITLE" in response  # shown, as pictures
    payload = [b"\x1b]0;", b"\x1b]2;", b"\x1b]52;", b"\x1b[2J", "\u009b".encode(), "\u202e".encode()]
    assert [p for p in payload if p in raw] == []


def test_the_one_rule_for_untrusted_text() -> None:
    assert safe("\x1b]0;t\x07") == "␛]0;t␇"
    assert safe("a\nb\tc\r") == "a␊b␉c␍" and safe("a\nb\tc\r", lines=True) == "a\nb\tc␍"
    assert safe("\x7f\x85\x9b") == "␡\\x85\\x9b"  # DEL; C1 (NEL, CSI)
    assert safe("abc\u202edcba\u2066x\u2069") == "abc\\u202edcba\\u2066x\\u2069"  # bidi
    assert safe(b"ok\xff".decode("utf-8", "surrogateescape")) == "ok\\xff"  # not UTF-8
    assert safe("Café [bold]Ōtautahi[/] 中文 ✔") == "Café [bold]Ōtautahi[/] 中文 ✔"  # everything else as is
