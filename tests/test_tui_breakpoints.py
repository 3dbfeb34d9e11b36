"""Calls held at a breakpoint, in the browser (headless Textual, a real file): listed at the top,
Enter opens the request editor with its schema check, Ctrl+S answers with the edits, ``a``,
``A`` and ``x`` answer without, and ``b`` sets breakpoints. The proxy side of the same rows is
tests/test_breakpoints.py; here the rows are written by the functions the proxy calls."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from inspector.samples.traffic import fill
from textual.widgets import Input, TextArea

from inspector.store import controls, flows, pauses
from inspector.store.database import open_db, open_for_reading
from inspector.store.pauses import Held
from inspector.tui import info
from inspector.tui.app import InspectorApp
from inspector.tui.dialogs import TextPrompt
from inspector.tui.editor import EditorScreen
from inspector.tui.paused import paused_line
from tests.test_tui import SIZE, settled, sql, until

pytestmark = pytest.mark.anyio

URL = "https://api.xero.com/practicemanager/3.0/job.api/add"
JOB = b"<Job><Name>Audit</Name><ClientID>24097642</ClientID><StartDate>20240101</StartDate><DueDate>20240201</DueDate></Job>"
HEADERS = (("Authorization", "Bearer redacted:sha256:0a1b2c3d"), ("Content-Type", "application/xml"))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "flows.db"
    with open_db(path) as d:
        fill(d, 20)
    return path


def hold(db: Path, body: bytes = JOB, side: str = "request", url: str = URL) -> int:
    status = 200 if side == "response" else None
    return pauses.hold(db, Held(side, "POST", url, HEADERS, body, status, 60.0), pid=1)


def state(db: Path, pause_id: int) -> tuple:
    return sql(db, "SELECT state, edit_method, edit_url, edit_headers, edit_body FROM pauses WHERE id = ?", pause_id)[0]


async def test_a_held_call_is_listed_edited_with_its_schema_checked_and_let_go(db: Path) -> None:
    app = InspectorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, app)
        assert not app.paused_calls.display  # nothing held: the list takes no room
        first = hold(db)
        await until(pilot, lambda: [p.id for p in app.paused_calls.calls] == [first])
        assert app.paused_calls.display
        line = paused_line(app.paused_calls.calls[0]).plain
        assert line.startswith("⏸ request  POST /practicemanager/3.0/job.api/add") and "s left" in line
        app.paused_calls.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor = app.screen
        assert isinstance(editor, EditorScreen)
        await until(pilot, lambda: editor.verdict == "valid")  # xpm job.api/add's schema, as `e` checks
        assert sql(db, "SELECT held FROM pauses WHERE id = ?", first) == [(1,)]  # more time, once
        body = editor.query_one("#body", TextArea)
        body.text = body.text.replace("<Name>Audit</Name>", "<Name>Audit FY24</Name><Bogus/>")
        await until(pilot, lambda: editor.verdict != "valid")  # checked as typed
        assert "<Bogus> is not an element Xero knows here" in editor.findings[0].message
        body.text = body.text.replace("<Bogus/>", "")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: state(db, first)[0] == "resume")
        _, method, url, headers, sent = state(db, first)
        assert (method, url, json.loads(headers)) == ("POST", URL, [list(h) for h in HEADERS])
        assert b"<Name>Audit FY24</Name>" in sent


async def test_a_held_call_let_go_untouched_goes_as_it_came(db: Path) -> None:
    """The editor lays a one-line body out on several lines to edit it; that is not an edit."""
    app = InspectorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, app)
        held = hold(db)
        await until(pilot, lambda: len(app.paused_calls.calls) == 1)
        app.paused_calls.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EditorScreen))
        assert isinstance(app.screen, EditorScreen) and "\n" in app.screen.body.text  # laid out
        await pilot.press("ctrl+s")
        await until(pilot, lambda: state(db, held)[0] == "resume")
        _, method, url, headers, sent = state(db, held)
        assert (method, url, json.loads(headers), sent) == ("POST", URL, [list(h) for h in HEADERS], JOB)


async def test_a_A_and_x_answer_without_the_editor_and_b_sets_breakpoints(db: Path) -> None:
    app = InspectorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, app)
        one, two, three = hold(db), hold(db), hold(db, side="response")
        await until(pilot, lambda: len(app.paused_calls.calls) == 3)
        assert paused_line(app.paused_calls.calls[2]).plain.startswith("⏸ response 200 POST ")
        await pilot.press("x")  # from the flow list: the highlighted held call, the oldest
        await until(pilot, lambda: state(db, one)[0] == "kill")
        await until(pilot, lambda: len(app.paused_calls.calls) == 2)
        await pilot.press("a")
        await until(pilot, lambda: state(db, two)[0] == "resume" and state(db, two)[4] is None)  # as it was
        hold(db)
        await pilot.press("A")
        await until(pilot, lambda: sql(db, "SELECT count(*) FROM pauses WHERE state = 'paused'") == [(0,)])
        assert state(db, three)[0] == "resume"
        await until(pilot, lambda: not app.paused_calls.display)
        await pilot.press("b")
        assert isinstance(app.screen, TextPrompt)
        await pilot.press(*"~api xpm & ~m POST; response ~u job.api/get", "enter")
        with open_for_reading(db) as conn:
            await until(pilot, lambda: controls.breaks(conn) == ["~api xpm & ~m POST", "response ~u job.api/get"])
        await pilot.press("b")
        app.screen.query_one(Input).value = "~m POST &"  # does not parse: nothing changes
        await pilot.press("enter")
        await pilot.pause(0.2)
        with open_for_reading(db) as conn:
            assert controls.breaks(conn) == ["~api xpm & ~m POST", "response ~u job.api/get"]


async def test_an_answer_held_is_edited_against_the_answers_schema(db: Path) -> None:
    answer = b'<Response api-method="Add"><Status>OK</Status><Job><ID>J9</ID><Name>Audit</Name></Job></Response>'
    app = InspectorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, app)
        held = hold(db, answer, side="response")
        await until(pilot, lambda: len(app.paused_calls.calls) == 1)
        app.paused_calls.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor = app.screen
        assert isinstance(editor, EditorScreen) and editor.response and editor.line.disabled
        await until(pilot, lambda: editor.verdict != "")
        assert "response" in str(editor.schema.render()).lower()
        await pilot.press("escape")  # left held
        await until(pilot, lambda: not isinstance(app.screen, EditorScreen))
        assert state(db, held)[0] == "paused"


def test_the_info_tab_says_what_a_breakpoint_did_and_shows_the_body_before_the_edit(db: Path) -> None:
    with open_for_reading(db) as conn:
        flow = flows.load(conn, 1)
    assert flow is not None
    row = {**flow.row, "paused": "request edited (body) after 3.2 s"}
    text = info.render(replace(flow, row=row, originals={"request": "<Job><Nmae>[b]x[/b]</Nmae>\x1b[2J</Job>"}))
    assert "paused[/] request edited (body) after 3.2 s" in text
    assert "the request body before the edit" in text
    assert "<Job><Nmae>\\[b]x\\[/b]</Nmae>␛[2J</Job>" in text  # not markup, not a terminal control
    assert "paused" not in info.render(flow)
