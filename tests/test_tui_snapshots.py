"""A few pinned pictures of the main screens (SVG, pytest-textual-snapshot).

Update them after an intended change with: python -m pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from inspector.samples.traffic import fill
from textual.pilot import Pilot

from inspector.store.database import open_db
from inspector.tui.app import InspectorApp
from inspector.tui.code_view import CodeView
from inspector.tui.orgs import OrganisationsScreen
from tests.test_tui import until

SIZE = (150, 44)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InspectorApp]:
    """The same store, the same clock zone and a relative path: the same picture anywhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    with open_db("flows.db") as db:
        fill(db, 60)
    yield InspectorApp("flows.db")
    monkeypatch.delenv("TZ")
    time.tzset()


async def ready(pilot: Pilot, expr: str = "") -> InspectorApp:
    app = pilot.app
    assert isinstance(app, InspectorApp)
    if expr:
        app.set_filter(expr)
        await until(pilot, lambda: app.flows.flow_query.expr == expr and app.flows.counted)
    await until(pilot, lambda: app.detail.flow is not None and app.flows.selected is not None)
    await until(pilot, lambda: app.detail.flow.id == app.flows.selected.id)  # type: ignore[union-attr]
    await settle(pilot)
    return app


async def settle(pilot: Pilot) -> None:
    """Nothing left in flight: no page being read, the status counted, the screen redrawn."""
    app = pilot.app
    assert isinstance(app, InspectorApp)
    await until(pilot, lambda: app.flows.counted and not app.flows.pending and not app.workers)
    bar = app.flows.vertical_scrollbar  # drawn from its own copy of the scroll state: wait for it to agree
    await until(
        pilot,
        lambda: (
            not app.flows.show_vertical_scrollbar
            or (bar.position == app.flows.scroll_y and bar.window_virtual_size == app.flows.virtual_size.height)
        ),
    )
    await pilot.pause(0.2)


def test_flow_list_with_a_failing_call(app: InspectorApp, snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await ready(pilot)
        for _ in range(3):  # to the POST job.api/add with the <ClientId> typo
            await pilot.press("up")
        await until(pilot, lambda: app.detail.flow is not None and app.detail.flow.id == app.flows.selected.id)  # type: ignore[union-attr]
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_an_ordinary_80x24_terminal(app: InspectorApp, snap_compare) -> None:  # type: ignore[no-untyped-def]
    """Time, method, resource/op, code, outcome and findings on every row; the detail below."""

    async def run_before(pilot: Pilot) -> None:
        await ready(pilot)
        for _ in range(3):
            await pilot.press("up")
        await until(pilot, lambda: app.detail.flow is not None and app.detail.flow.id == app.flows.selected.id)  # type: ignore[union-attr]
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_zoomed_request_at_a_finding(app: InspectorApp, snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await ready(pilot, "~v xsd & ~api accounting")
        await pilot.press("z", "3")
        await pilot.pause(0.1)
        app.detail.jump_to(app.detail.flow.findings[1])  # type: ignore[union-attr]
        await until(pilot, lambda: app.detail.query_one("#request-view", CodeView).highlight is not None)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_organisations(app: InspectorApp, snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await ready(pilot)
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, OrganisationsScreen) and bool(app.screen.query(".org")))
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
