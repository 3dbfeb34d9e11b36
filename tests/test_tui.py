"""The browser as a user drives it: a real Textual app, headless, over a real store built
through the real ingest. Assertions are on state and on the messages the app posts."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from inspector.samples.traffic import Traffic, fill
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Sparkline, Static, TabbedContent

from inspector.store.browse import FlowQuery, max_id
from inspector.store.database import open_db, open_for_reading
from inspector.tui.app import InspectorApp
from inspector.tui.code_view import CodeView
from inspector.tui.dialogs import ConfirmScreen, ExportScreen, TextPrompt
from inspector.tui.messages import FilterApplied, FilterPreview, FlowHighlighted, PageLoaded, Polled
from inspector.tui.orgs import OrganisationsScreen
from tests.helpers import WAIT

SIZE = (160, 45)
FLOWS = 130
pytestmark = pytest.mark.anyio  # anyio's pytest plugin comes with httpx; Textual runs on asyncio


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tui") / "flows.db"
    with open_db(path) as db:
        fill(db, FLOWS)
    return path


@pytest.fixture
def db(recorded: Path, tmp_path: Path) -> Path:
    """A private copy: tests mark, comment and delete."""
    path = tmp_path / "flows.db"
    shutil.copy(recorded, path)
    return path


async def until(pilot: Pilot, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "the app never got there"
        await pilot.pause(0.05)


def sql(path: Path, query: str, *params: object) -> list[tuple]:
    with open_for_reading(path) as conn:
        return [tuple(r) for r in conn.execute(query, params)]


async def settled(pilot: Pilot, app: InspectorApp) -> None:
    await until(pilot, lambda: app.flows.selected is not None and app.detail.flow is not None)
    await until(pilot, lambda: app.detail.flow is not None and app.detail.flow.id == app.flows.selected.id)  # type: ignore[union-attr]


async def test_opens_on_the_newest_flow_with_its_detail(db: Path) -> None:
    messages: list[Message] = []
    app = InspectorApp(db)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settled(pilot, app)
        newest = sql(db, "SELECT max(id) FROM flows")[0][0]
        assert app.flows.total == FLOWS and app.flows.cursor == FLOWS - 1
        assert app.flows.selected is not None and app.flows.selected.id == newest
        assert any(isinstance(m, FlowHighlighted) and m.flow_id == newest for m in messages)
        # only the pages on screen were read, never the whole table
        loaded = sum(len(m.rows) for m in messages if isinstance(m, (PageLoaded, FilterPreview)))
        assert 0 < loaded < FLOWS
        status = str(app.query_one("#status", Static).render())
        assert f"{FLOWS:,} flows" in status and "no recorder" in status


async def test_filter_narrows_the_list_and_a_bad_filter_is_shown_in_place(db: Path) -> None:
    messages: list[Message] = []
    app = InspectorApp(db)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settled(pilot, app)
        await pilot.press("slash")
        await pilot.press(*"~c 400 & ~api accounting")
        await pilot.press("enter")
        expected = sql(db, "SELECT count(*) FROM flows WHERE status = 400 AND family LIKE 'accounting-%'")[0][0]
        await until(pilot, lambda: app.flows.flow_query.expr == "~c 400 & ~api accounting" and app.flows.counted)
        assert app.flows.total == expected == 10
        assert any(isinstance(m, FilterApplied) and m.total == expected for m in messages)
        await until(pilot, lambda: app.flows.selected is not None)
        assert app.flows.selected.status == 400  # type: ignore[union-attr]

        # Pasted whole: an emptied box left alone for the debounce rightly shows every flow.
        app.query_one("#filter", Input).value = "~c 400 & (~bogus"
        await pilot.press("slash", "enter")
        error = app.query_one("#filter-error", Static)
        await until(pilot, lambda: error.has_class("-shown"))
        assert "unknown filter ~bogus" in str(error.render())
        assert app.query_one("#filter", Input).has_class("-bad-filter")
        assert app.flows.total == expected  # the list keeps the last good filter

        app.query_one("#filter", Input).value = ""
        await pilot.press("slash", *"~bq ClientId", "enter")
        await until(pilot, lambda: app.flows.flow_query.expr == "~bq ClientId" and app.flows.counted)
        assert not error.has_class("-shown")
        # full-text search, case-insensitive like every pattern: <ClientID> and the <ClientId> typo
        having = sql(db, "SELECT count(*) FROM bodies WHERE side = 'request' AND text LIKE '%clientid%'")[0][0]
        assert app.flows.total == having == 20


async def test_a_filter_shows_its_first_rows_before_it_is_counted(db: Path) -> None:
    """Counting a million rows takes longer than reading a page: the page comes first, the
    count after, and the selected flow stays selected when the filter still shows it."""
    messages: list[Message] = []
    app = InspectorApp(db)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settled(pilot, app)
        app.set_filter("~c 429")
        await until(pilot, lambda: app.flows.flow_query.expr == "~c 429" and app.flows.counted)
        seen = [m for m in messages if isinstance(m, (FilterPreview, FilterApplied)) and m.query.expr == "~c 429"]
        assert [type(m) for m in seen] == [FilterPreview, FilterApplied]
        newest = [r[0] for r in sql(db, "SELECT id FROM flows WHERE status = 429 ORDER BY id DESC LIMIT 100")][::-1]
        preview, applied = seen
        assert isinstance(preview, FilterPreview) and isinstance(applied, FilterApplied)
        assert [r.id for r in preview.rows] == newest and preview.cursor == len(newest) - 1
        assert applied.total == len(newest) and app.flows.selected.id == newest[-1]  # type: ignore[union-attr]

        app.flows.move_to(1)  # away from the newest: this flow should stay selected
        await until(pilot, lambda: app.flows.selected is not None and app.flows.selected.id == newest[1])
        app.set_filter("~c 429 | ~c 200")
        await until(pilot, lambda: app.flows.flow_query.expr == "~c 429 | ~c 200" and app.flows.counted)
        preview = next(m for m in messages if isinstance(m, FilterPreview) and m.query.expr == "~c 429 | ~c 200")
        assert preview.rows[preview.cursor].id == newest[1]
        # Counted with the flow kept, the list rereads that flow's page: wait for it, not for the count.
        await until(pilot, lambda: app.flows.selected is not None)
        assert app.flows.selected is not None and app.flows.selected.id == newest[1]
        before = sql(db, "SELECT count(*) FROM flows WHERE status IN (429, 200) AND id < ?", newest[1])[0][0]
        assert app.flows.cursor == before
        status = str(app.query_one("#status", Static).render())
        assert "counting" not in status and "match '~c 429 | ~c 200'" in status


async def test_a_move_made_while_a_filter_is_counted_is_kept(db: Path) -> None:
    """On a million flows the count lands half a second after the first rows: a key pressed
    or a flow jumped to in between must not be undone by it."""
    app = InspectorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, app)
        query = FlowQuery("~c 429")
        with open_for_reading(db) as conn:
            top = max_id(conn)
            rows = query.last(conn, 100, top)
        assert 5 < len(rows) < 100  # one page: the preview holds every match

        async def counted_after(between: Callable[[], object]) -> None:
            app.filter_seq += 1  # what apply_filter does; the two messages its worker would post
            app.post_message(FilterPreview(app.filter_seq, query, rows, len(rows) - 1, top))
            await until(pilot, lambda: not app.flows.counted and app.flows.cursor == len(rows) - 1)
            between()
            await pilot.pause()
            app.post_message(FilterApplied(app.filter_seq, query, len(rows), top, None, rows))
            await until(pilot, lambda: app.flows.counted)

        await counted_after(lambda: app.flows.action_move(-2))  # up, up
        assert app.flows.cursor == len(rows) - 3
        await until(pilot, lambda: app.flows.selected is not None and app.flows.selected.id == rows[-3].id)

        await counted_after(lambda: app.action_goto(rows[1].id))  # a jump (replay's "go to original")
        await until(pilot, lambda: app.flows.selected is not None and app.flows.selected.id == rows[1].id)
        assert app.flows.cursor == 1


async def test_choosing_a_finding_jumps_to_its_line(db: Path) -> None:
    app = InspectorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        app.set_filter("~v unknown-element")
        await until(pilot, lambda: app.flows.flow_query.expr == "~v unknown-element" and app.flows.counted)
        await settled(pilot, app)
        await pilot.press("3")
        tabs = app.query_one(TabbedContent)
        assert tabs.active == "findings"
        findings = app.query_one("#findings-list", OptionList)
        found = app.detail.flow.findings  # type: ignore[union-attr]
        await until(pilot, lambda: findings.option_count == len(found) >= 3)
        typo = [f["rule"] for f in found].index("unknown-element")
        findings.focus()
        findings.highlighted = typo
        await pilot.press("enter")
        await until(pilot, lambda: tabs.active == "request")
        view = app.query_one("#request-view", CodeView)
        assert view.highlight is not None
        shown = view.document.lines[view.highlight].plain
        assert shown.startswith("3 │") and "<ClientId>24097642</ClientId>" in shown
        assert "unknown-element" in view.document.lines[view.highlight + 1].plain
        assert app.query_one("#xero-error", Static).display
        assert "Invalid client identifier" in str(app.query_one("#xero-error", Static).render())


async def test_new_flows_arrive_live_and_follow_keeps_the_newest_selected(db: Path) -> None:
    messages: list[Message] = []
    app = InspectorApp(db)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settled(pilot, app)
        await pilot.press("home")
        await pilot.press("F")
        assert app.follow and app.flows.cursor == FLOWS - 1
        with open_db(db) as other:  # another process's connection, as the proxy's would be
            ids = fill(other, 13, Traffic(start=1_790_100_000.0))
        await until(pilot, lambda: app.flows.total == FLOWS + 13)
        await until(pilot, lambda: app.flows.selected is not None and app.flows.selected.id == ids[-1])
        assert any(isinstance(m, Polled) and m.added == 13 for m in messages)
        await pilot.press("up")  # moving away from the newest ends follow, like less +F
        assert not app.follow


async def test_mark_comment_and_delete(db: Path) -> None:
    app = InspectorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, app)
        fid = app.flows.selected.id  # type: ignore[union-attr]
        await pilot.press("m")
        await until(pilot, lambda: sql(db, "SELECT marked FROM flows WHERE id = ?", fid) == [(1,)])
        await until(pilot, lambda: app.flows.selected is not None and app.flows.selected.marked == 1)

        await pilot.press("n")
        assert isinstance(app.screen, TextPrompt)
        await pilot.press(*"refused: mock down", "enter")
        await until(pilot, lambda: sql(db, "SELECT comment FROM flows WHERE id = ?", fid) == [("refused: mock down",)])

        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: app.flows.total == FLOWS - 1)
        assert sql(db, "SELECT count(*) FROM flows WHERE id = ?", fid) == [(0,)]
        await until(pilot, lambda: app.flows.selected is not None and app.flows.selected.id != fid)


async def test_export_har_and_copy_curl(db: Path, tmp_path: Path) -> None:
    app = InspectorApp(db)
    target = tmp_path / "out.har"
    async with app.run_test(size=SIZE) as pilot:
        app.set_filter("~api xpm-3.0 & ~op add")
        await until(pilot, lambda: app.flows.flow_query.expr == "~api xpm-3.0 & ~op add" and app.flows.counted)
        await settled(pilot, app)
        await pilot.press("c")
        await until(pilot, lambda: "curl -X POST" in app.clipboard)
        assert "${XERO_ACCESS_TOKEN}" in app.clipboard

        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen))
        app.screen.query_one("#filtered").value = True
        path = app.screen.query_one("#path", Input)
        path.value = str(target)
        await pilot.press("enter")
        await until(pilot, target.exists)
        await until(pilot, lambda: target.read_text().endswith("]}}\n"))
    entries = json.loads(target.read_text())["log"]["entries"]
    assert len(entries) == app.flows.total == 20
    assert {e["request"]["url"] for e in entries} == {"https://api.xero.com/practicemanager/3.0/job.api/add"}


async def test_export_as_mitmproxy_flows_from_the_browser(db: Path, tmp_path: Path) -> None:
    from mitmproxy.io import FlowReader

    app = InspectorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        app.set_filter("~c 429")
        await until(pilot, lambda: app.flows.flow_query.expr == "~c 429" and app.flows.counted)
        await settled(pilot, app)
        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen))
        path = app.screen.query_one("#path", Input)
        path.value = str(tmp_path / "limited.har")
        app.screen.query_one("#filtered").value = True
        app.screen.query_one("#mitm").value = True
        await until(pilot, lambda: path.value.endswith("limited.mitm"))  # the name follows the format
        path.focus()
        await pilot.press("enter")
        target = tmp_path / "limited.mitm"
        await until(pilot, target.exists)
    with target.open("rb") as f:
        got = list(FlowReader(f).stream())
    assert len(got) == app.flows.total == sql(db, "SELECT count(*) FROM flows WHERE status = 429")[0][0] > 0
    assert {f.response.status_code for f in got} == {429}  # type: ignore[attr-defined]


async def test_organisations_panel(db: Path) -> None:
    app = InspectorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, app)
        await pilot.press("o")
        assert isinstance(app.screen, OrganisationsScreen)
        await until(pilot, lambda: len(app.screen.query(Sparkline)) == 2)
        text = " ".join(str(s.render()) for s in app.screen.query(".org-text"))
        limited = sql(db, "SELECT count(*) FROM flows WHERE status = 429")[0][0]
        assert "Demo Practice Ltd" in text and "Demo Company (NZ)" in text and f"{limited} × 429" in text
        lines = [s.data for s in app.screen.query(Sparkline)]
        assert all(len(d) > 10 for d in lines)
        await pilot.press("escape")
        assert not isinstance(app.screen, OrganisationsScreen)


async def test_help_and_palette_commands(db: Path) -> None:
    app = InspectorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        assert any("~tenant NAME|ID" in s.text for s in app.screen._compositor.render_strips())
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Filter: Failed calls" in titles and "Filter: Xero errors" in titles and "Export" in titles


async def test_quitting_while_a_worker_reads_waits_for_it(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing a connection another thread is reading from crashes the process (seen in CI as a
    segfault at quit): the browser closes each one only once its worker is done with it."""
    import threading

    from inspector.tui import app as app_module

    real, armed, reading = app_module.max_id, threading.Event(), threading.Event()
    outcomes: list[object] = []

    def slow_max_id(conn: sqlite3.Connection) -> int:
        if not armed.is_set():
            return real(conn)
        reading.set()
        time.sleep(0.5)  # the user quits now
        try:
            outcomes.append(real(conn))
        except Exception as e:  # closed under us
            outcomes.append(e)
            raise
        return int(outcomes[-1])  # type: ignore[call-overload]

    monkeypatch.setattr(app_module, "max_id", slow_max_id)
    app = InspectorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, app)
        armed.set()
        with open_db(db) as other:  # new rows: the next poll reads the newest id
            fill(other, 1, Traffic(start=1_790_200_000.0))
        await until(pilot, reading.is_set)
    assert len(outcomes) == 1 and isinstance(outcomes[0], int), outcomes


async def test_fault_rules_are_set_from_the_browser_into_the_file(db: Path) -> None:
    from inspector.store import controls

    app = InspectorApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, app)
        await pilot.press("i")
        assert isinstance(app.screen, TextPrompt)
        await pilot.press(*"rate-limit ~res job.api times 1; xpm-error ~m POST", "enter")
        with open_for_reading(db) as conn:
            await until(
                pilot, lambda: controls.faults(conn) == ["rate-limit ~res job.api times 1", "xpm-error ~m POST"]
            )
        await pilot.press("i")  # shown as set, and a rule that does not parse changes nothing
        assert app.screen.query_one(Input).value == "rate-limit ~res job.api times 1; xpm-error ~m POST"
        app.screen.query_one(Input).value = "nope ~m GET"
        await pilot.press("enter")
        await pilot.pause(0.2)
        with open_for_reading(db) as conn:
            assert controls.faults(conn) == ["rate-limit ~res job.api times 1", "xpm-error ~m POST"]
        await pilot.press("i")
        app.screen.query_one(Input).value = ""
        await pilot.press("enter")  # empty: cleared
        with open_for_reading(db) as conn:
            await until(pilot, lambda: controls.faults(conn) == [])
