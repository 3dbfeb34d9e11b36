"""The browser in an ordinary terminal: 80x24 keeps the columns that matter, a wide one gives
each column what its content needs; the first flows into an empty list are selected; the
Findings tab takes the focus; the organisations panel and the help read right at 80 columns."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from inspector.samples.traffic import fill
from textual.widgets import Input, OptionList, Sparkline, Static, TabbedContent

from inspector.ingest.catalog import Catalog
from inspector.ingest.pipeline import Ingest
from inspector.store.database import insert, open_db
from inspector.store.query import HELP as FILTER_HELP
from inspector.tui.app import InspectorApp
from inspector.tui.code_view import CodeView
from inspector.tui.columns import COLUMNS, layout
from inspector.tui.flow_list import content_widths
from inspector.tui.orgs import OrganisationsScreen
from tests.test_ingest import record
from tests.test_tui import FLOWS, settled, until

pytestmark = pytest.mark.anyio
ESSENTIAL = ["TIME", "METHOD", "RESOURCE/OP", "CODE", "OUTCOME", "FINDINGS"]
CUSTOMER_API = "https://networktest.xero.com/api.xro/1.0/contacts?apiKey=PARTNERKEY1&xeroKey=CUSTOMERKEY1"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic traffic, and one Customer API call: an organisation known only by the
    fingerprint of its key, with no rate-limit headers."""
    path = tmp_path_factory.mktemp("layout") / "flows.db"
    with open_db(path) as db:
        fill(db, FLOWS)
        network = record(
            method="GET",
            url=CUSTOMER_API,
            request_headers=(),
            request_body=b"",
            response_headers=(("Content-Type", "text/xml"),),
            response_body=b"<Response><Status>OK</Status><Contacts /></Response>",
            started_at=1_790_000_000.0 + FLOWS * 1.5,
        )
        insert(db, [Ingest(Catalog.load())(network)], 0)
    return path


@pytest.fixture
def db(recorded: Path, tmp_path: Path) -> Path:
    path = tmp_path / "flows.db"
    shutil.copy(recorded, path)
    return path


def screen_lines(app: InspectorApp) -> list[str]:
    """What the terminal shows, line by line."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def header(app: InspectorApp) -> str:
    return str(app.list_header.render())


# --- the layout, as a function of width and content -------------------------------------------


def test_at_80_columns_the_essential_columns_stay_whatever_the_content() -> None:
    widest = {"org": 36, "api": 14, "resource": 48, "outcome": 15}
    cols = layout(78, widest)  # 80 less the list's scrollbar
    shown = [c.title for c, _ in cols.widths]
    assert [t for t in shown if t in ESSENTIAL] == ESSENTIAL
    assert cols.width("outcome") == 15 and cols.width("findings") == 8
    assert sum(w for _, w in cols.widths) + len(cols.widths) - 1 <= 78


def test_a_wide_terminal_gives_each_column_its_content_not_the_rest() -> None:
    content = {"org": 17, "api": 14, "resource": 25, "outcome": 15}
    cols = layout(178, content)
    assert [c.key for c, _ in cols.widths] == [c.key for c in COLUMNS]  # everything shows
    assert cols.width("org") == 17 and cols.width("resource") == 25 and cols.width("time") == 12
    # what is left over is blank at the right, not 75 columns of RESOURCE/OP
    assert sum(w for _, w in cols.widths) + len(cols.widths) - 1 < 178


def test_columns_come_and_go_by_priority() -> None:
    content = {"org": 17, "api": 7, "resource": 15, "outcome": 12}
    order = []
    for width in range(50, 200):
        keys = [c.key for c, _ in layout(width, content).widths]
        for k in keys:
            if k not in order:
                order.append(k)
    assert order[:7] == ["mark", "time", "method", "resource", "code", "outcome", "findings"]
    assert order[7:] == ["api", "org", "duration", "size"]


# --- in the running browser -----------------------------------------------------------------


async def test_80x24_shows_outcome_and_findings_of_every_row(db: Path) -> None:
    app = InspectorApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot, app)
        await until(pilot, lambda: all(t in header(app) for t in ESSENTIAL))
        lines = screen_lines(app)
        top = next(i for i, line in enumerate(lines) if "RESOURCE/OP" in line)
        rows = [line for line in lines[top + 1 : top + 1 + 6] if line.strip()]
        shown = app.flows.pages[max(app.flows.pages)]  # the newest page, the one on screen
        assert rows
        for line in rows:
            assert any(o in line for o in ("ok", "api-error", "http-error", "rate-limited", "transport-error")), line
        # the flow with findings shows them, in full
        with_findings = [r for r in shown if r.errors][-1]
        app.flows.move_to(app.flows.total - (len(shown) - shown.index(with_findings)))
        await until(pilot, lambda: app.flows.selected is not None and app.flows.selected.id == with_findings.id)
        assert any(f"{with_findings.errors}E" in line for line in screen_lines(app))


async def test_180_columns_name_the_organisation_in_full(db: Path) -> None:
    app = InspectorApp(db)
    async with app.run_test(size=(180, 45)) as pilot:
        await settled(pilot, app)
        await until(pilot, lambda: "ORGANISATION" in header(app))
        rows = [r for page in app.flows.pages.values() for r in page]
        widest = content_widths(rows, app.flows.names)
        assert app.flows.columns.width("resource") == widest["resource"] < 40
        await until(pilot, lambda: "Demo Practice Ltd " in "\n".join(screen_lines(app)))
        text = "\n".join(screen_lines(app))
        assert "Demo Company (NZ) " in text and "Demo Pract…" not in text


async def test_the_first_flows_into_an_empty_list_are_selected(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    open_db(path).close()
    app = InspectorApp(path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.flows.counted)
        assert app.flows.total == 0 and app.flows.selected is None
        with open_db(path) as other:  # as the proxy's writer would
            ids = fill(other, 3)
        await until(pilot, lambda: app.flows.total == 3)
        await until(pilot, lambda: app.flows.selected is not None)
        assert app.flows.selected.id == ids[0]  # type: ignore[union-attr]
        await until(pilot, lambda: app.detail.flow is not None and app.detail.flow.id == ids[0])
        await pilot.press("c")  # acts at once, without an arrow key first
        await until(pilot, lambda: "curl" in app.clipboard)


async def test_the_findings_tab_takes_the_focus_so_enter_jumps(db: Path) -> None:
    app = InspectorApp(db)
    async with app.run_test(size=(100, 40)) as pilot:
        app.set_filter("~v unknown-element")
        await until(pilot, lambda: app.flows.flow_query.expr == "~v unknown-element" and app.flows.counted)
        await settled(pilot, app)
        await pilot.press("3")
        findings = app.query_one("#findings-list", OptionList)
        await until(pilot, lambda: findings.option_count > 0)
        assert app.focused is findings and findings.highlighted == 0
        await pilot.press("enter")
        tabs = app.query_one(TabbedContent)
        await until(pilot, lambda: tabs.active in ("request", "response"))
        view = app.query_one(f"#{tabs.active}-view", CodeView)
        assert view.highlight is not None and app.focused is view


async def test_organisations_without_a_name_or_rate_limits_at_80_columns(db: Path) -> None:
    app = InspectorApp(db)
    async with app.run_test(size=(80, 40)) as pilot:
        await settled(pilot, app)
        await pilot.press("o")
        assert isinstance(app.screen, OrganisationsScreen)
        await until(pilot, lambda: len(app.screen.query(".org")) == 3)
        cards = list(app.screen.query(".org"))
        texts = [str(c.query_one(".org-text", Static).render()) for c in cards]
        (unnamed,) = [(c, t) for c, t in zip(cards, texts, strict=True) if t.startswith("redacted:sha256:")]
        card, text = unnamed
        fingerprint = text.split()[0]
        assert text.count(fingerprint) == 1 and "no rate-limit headers recorded" in text
        assert not card.query_one(Sparkline).display  # no full bar standing for "no data"
        named = [c for c, t in zip(cards, texts, strict=True) if c is not card]
        assert all(c.query_one(Sparkline).display for c in named)


async def test_help_at_80_columns_is_for_users_and_never_cut(db: Path) -> None:
    app = InspectorApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        box = app.screen.query_one("#help")
        seen: list[str] = []
        for _ in range(10):
            seen += screen_lines(app)
            box.scroll_page_down(animate=False)
            await pilot.pause(0.05)
        text = "\n".join(seen)
        assert "SQL" not in text and "flows``" not in text
        for key, description in [*InspectorApp.HELP_KEYS, *FILTER_HELP]:
            assert any(key in line and description in line for line in seen), (key, description)


async def test_an_unclosed_quote_is_a_bad_filter_said_in_place(db: Path) -> None:
    app = InspectorApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot, app)
        await pilot.press("slash", *'~b "unterminated', "enter")
        error = app.query_one("#filter-error", Static)
        await until(pilot, lambda: error.has_class("-shown"))
        assert "never closed" in str(error.render())
        assert app.query_one("#filter", Input).has_class("-bad-filter") and app.flows.flow_query.expr == ""
