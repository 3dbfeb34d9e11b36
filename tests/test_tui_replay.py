"""Replaying from the browser, driven headless: the editor's live findings, sending an edited
request to the mock over TLS, the write confirmation, the token prompt and the diff."""

from __future__ import annotations

from pathlib import Path

import pytest
from inspector.samples.mock_xero import DEFAULT_SCOPES, MockXero
from inspector.samples.traffic import Traffic, fill
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input
from textual.widgets.text_area import Selection

from inspector.commands.replay import Options
from inspector.store.database import open_db
from inspector.tui.app import InspectorApp
from inspector.tui.dialogs import ConfirmScreen, TextPrompt
from inspector.tui.editor import EditorScreen
from inspector.tui.replaying import DiffScreen, ReplaySettings
from tests.test_tui import SIZE, sql, until

pytestmark = pytest.mark.anyio


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("XERO_ACCESS_TOKEN", raising=False)
    path = tmp_path / "flows.db"
    with open_db(path) as database:
        fill(database, len(Traffic().templates))  # one of each: the typo'd job add, the expired token…
    return path


def app_for(db: Path, mock: MockXero, token: str | None) -> InspectorApp:
    options = Options(token=token, to=mock.url, ca=str(mock.ca_path))
    return InspectorApp(db, replay=ReplaySettings(options))


def flow_id(db: Path, where: str) -> int:
    return int(sql(db, f"SELECT id FROM flows WHERE {where}")[0][0])


async def select(pilot: Pilot, app: InspectorApp, fid: int) -> None:
    await until(pilot, lambda: app.flows.selected is not None)
    app.action_goto(fid)
    await until(pilot, lambda: app.flows.selected is not None and app.flows.selected.id == fid)


async def test_the_editor_checks_as_you_type_and_sends_the_fix(db: Path, upstream: MockXero) -> None:
    typo = flow_id(db, "path LIKE '%job.api/add' AND errors > 0")
    app = app_for(db, upstream, upstream.app.tokens.issue(DEFAULT_SCOPES))
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, typo)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor = app.screen
        assert isinstance(editor, EditorScreen)
        await until(pilot, lambda: editor.verdict != "")
        rules = {f.rule for f in editor.findings}
        assert rules == {"xsd", "unknown-element"} and editor.verdict.startswith("1 error(s)")
        assert editor.found.option_count == 2
        assert editor.body.text.count("\n") >= 5  # the one-line body is laid out to be edited

        # type the fix over both tags: "Id" -> "ID"
        for _ in range(2):
            row, line = next((i, t) for i, t in enumerate(editor.body.text.splitlines()) if "ClientId" in t)
            col = line.index("ClientId") + len("Client")
            editor.body.selection = Selection((row, col), (row, col + 2))
            await pilot.press("I", "D")
        assert "<ClientID>" in editor.body.text and "ClientId" not in editor.body.text
        await until(pilot, lambda: editor.verdict == "valid")
        assert editor.findings == [] and editor.found.option_count == 0

        before = len(upstream.app.exchanges)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))  # a POST: asked first
        assert "Demo Practice Ltd" in app.screen.question  # type: ignore[attr-defined]
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, DiffScreen))
        diff = app.screen.diff  # type: ignore[attr-defined]
        assert (diff.a.id, diff.a.row["outcome"], diff.b.row["outcome"]) == (typo, "api-error", "ok")
        assert {f["rule"] for f in diff.gone} >= {"xsd", "unknown-element", "xpm-error"}
    assert len(upstream.app.exchanges) == before + 1
    assert b"<ClientID>24097642</ClientID>" in upstream.app.exchanges[-1].request.body
    ((replay_of, outcome, errors),) = sql(db, "SELECT replay_of, outcome, errors FROM flows WHERE source = 'replay'")
    assert (replay_of, outcome, errors) == (typo, "ok", 0)


async def test_a_write_asks_first_and_no_means_nothing_is_sent(db: Path, upstream: MockXero) -> None:
    typo = flow_id(db, "path LIKE '%job.api/add' AND errors > 0")
    app = app_for(db, upstream, "any-token")
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, typo)
        before = len(upstream.app.exchanges)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = app.screen.question  # type: ignore[attr-defined]
        assert question.startswith("Send POST https://api.xero.com/practicemanager/3.0/job.api/add\n")
        # where it really goes, beside the organisation: tui --to sends it to the mock, not to Xero
        assert f"\nvia {upstream.url}/practicemanager/3.0/job.api/add (--to)\n" in question
        assert "to Demo Practice Ltd?" in question
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.3)
    assert len(upstream.app.exchanges) == before
    assert sql(db, "SELECT count(*) FROM flows WHERE source = 'replay'") == [(0,)]


async def test_replay_asks_for_a_token_when_it_has_none(db: Path, upstream: MockXero) -> None:
    expired = flow_id(db, "status = 401")
    app = app_for(db, upstream, None)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, expired)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, TextPrompt))
        assert "token redacted" in app.screen.title_text  # type: ignore[attr-defined]
        prompt = app.screen.query_one("#text", Input)
        prompt.post_message(events.Paste(upstream.app.tokens.issue(DEFAULT_SCOPES)))  # pasted, as a user would
        await until(pilot, lambda: len(prompt.value) > 100)
        assert prompt.password  # not shown on screen
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DiffScreen))
        diff = app.screen.diff  # type: ignore[attr-defined]
        assert (diff.a.row["status"], diff.b.row["status"], diff.b.row["outcome"]) == (401, 200, "ok")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DiffScreen))
    ((replay_of, source),) = sql(db, "SELECT replay_of, source FROM flows WHERE replay_of IS NOT NULL")
    assert (replay_of, source) == (expired, "replay")
