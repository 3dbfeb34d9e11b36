"""Calls held at a breakpoint, above the flow list: shown only while a proxy holds some.

Enter opens the held call in the request editor (its schema checked as you type); Ctrl+S there
lets it go with the edits. ``a`` lets the highlighted call go as it is, ``A`` every held call,
``x`` kills one (the app's connection is closed). Answers go through store/pauses.py, the
channel the proxy reads (a fraction of a second later).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from inspector.commands.replay import Request
from inspector.ingest.validate import Validator
from inspector.store import pauses
from inspector.store.pauses import Edit, Paused
from inspector.tui.editor import EditorScreen
from inspector.tui.replaying import Replays
from inspector.utils.text import safe

T = TypeVar("T")
Write = Callable[[Callable[[sqlite3.Connection], T]], T]
MAX_ROWS = 5


def paused_line(p: Paused, now: float | None = None) -> Text:
    """One held call: side, method (or Xero's status), path, seconds left; nothing a terminal obeys."""
    parts = urlsplit(p.url)
    what = f"{p.status} {p.method}" if p.side == "response" and p.status is not None else p.method
    return Text.assemble(
        ("⏸ ", "bold yellow"),
        (f"{p.side:<8} ", "yellow"),
        (f"{safe(what)} ", "bold"),
        safe(parts.path or "/"),
        (f"  {p.left_s(now):.0f} s left" + (" (editing)" if p.held else ""), "dim"),
    )


class PausedCalls(OptionList):
    """The held calls, oldest first; answered through ``write`` (the browser's write connection)."""

    def __init__(self, write: Write[object], replays: Replays, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.write = write
        self.replays = replays
        self.calls: list[Paused] = []
        self.border_title = "held at a breakpoint"
        self.display = False

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)

    def show(self, calls: list[Paused]) -> None:
        """The calls the last poll found; the highlight stays on the same call if it is still held."""
        before = self.highlighted_call
        appeared = bool(calls) and not self.calls
        self.calls = calls
        self._draw(keep=before.id if before else None)
        self._show_if_any()
        self.styles.height = min(len(calls), MAX_ROWS) + 2
        if appeared:
            n = len(calls)
            self.app.notify(
                f"{n} call(s) held at a breakpoint, at the top: Shift+Tab to them, Enter edits one, "
                "a lets it go, A all of them, x kills it",
                severity="warning",
            )

    def _draw(self, keep: int | None) -> None:
        now = time.time()
        self.clear_options()
        self.add_options([Option(paused_line(p, now), id=str(p.id)) for p in self.calls])
        ids = [p.id for p in self.calls]
        if self.calls:
            self.highlighted = ids.index(keep) if keep in ids else 0
        self.border_subtitle = "Enter edit · a resume · A all · x kill" if self.calls else ""

    def _tick(self) -> None:
        if self.calls:  # the seconds left count down between polls
            before = self.highlighted_call
            self.calls = [p for p in self.calls if p.left_s() > 0]
            self._draw(keep=before.id if before else None)
            self._show_if_any()

    def _show_if_any(self) -> None:
        if not self.calls and self.has_focus:  # the last one went: the flow list, below, takes the keys
            self.screen.focus_next()
        self.display = bool(self.calls)

    @property
    def highlighted_call(self) -> Paused | None:
        i = self.highlighted
        return self.calls[i] if i is not None and 0 <= i < len(self.calls) else None

    # -- answers -----------------------------------------------------------------------------

    def resume(self, edit: Edit | None = None, call: Paused | None = None) -> None:
        call = call or self.highlighted_call
        if call is not None:
            said = f"{_name(call)} let go" + (" with your edits" if edit else "")
            self._answer(lambda c: pauses.resume(c, call.id, edit), said)

    def resume_all(self) -> None:
        self._answer(pauses.resume_all, "every held call let go")

    def kill(self) -> None:
        call = self.highlighted_call
        if call is not None:
            self._answer(lambda c: pauses.kill(c, call.id), f"{_name(call)} killed")

    @work(thread=True, group="pauses", exit_on_error=False)
    def _answer(self, change: Callable[[sqlite3.Connection], object], said: str) -> None:
        result = self.write(change)
        if result is False or result == 0:
            self.app.call_from_thread(self.app.notify, "no longer held (it went on already)", severity="warning")
        else:
            self.app.call_from_thread(self.app.notify, said)

    # -- the editor ----------------------------------------------------------------------------

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        call = self.highlighted_call
        if call is not None:
            self._open(call)

    @work(thread=True, group="pauses", exit_on_error=False)
    def _open(self, call: Paused) -> None:
        try:
            validator = self.replays.editor_validator()
        except (OSError, ValueError) as e:  # a broken user catalog: say so, the call stays held
            self.app.call_from_thread(self.app.notify, str(e), severity="error")
            return
        deadline = self.write(lambda c: pauses.take_longer(c, call.id)) or call.deadline
        self.app.call_from_thread(self._edit, call, validator, deadline)

    def _edit(self, call: Paused, validator: Validator, deadline: float) -> None:
        request = Request(call.method, call.url, call.headers, call.body)
        until = time.strftime("%H:%M:%S", time.localtime(deadline))
        side = "Xero's answer" if call.side == "response" else "the request"
        title = f"[b]Held at a breakpoint[/]: {side}; it goes on unchanged at {until}\n"
        title += "[b]Ctrl+S[/] lets it go with your edits · [b]Esc[/] leaves it held"

        def done(edited: Request | None) -> None:
            if edited is None:
                self.app.notify(f"still held; it goes on unchanged at {until}")
                return
            if call.side == "response":  # the request line is Xero's; only the answer's parts change
                self.resume(Edit(headers=edited.headers, body=edited.body or b""), call)
            else:
                self.resume(Edit(edited.method, edited.url, edited.headers, edited.body), call)

        response = call.side == "response"
        screen = HeldEditorScreen(0, request, self.replays.catalog, validator, heading=title, response=response)
        self.app.push_screen(screen, done)


class HeldEditorScreen(EditorScreen):
    """The request editor on a held call: Ctrl+S lets it go rather than sends a replay."""

    BINDINGS = [
        Binding("ctrl+s", "send", "Let go", priority=True),
        Binding("escape", "dismiss(None)", "Leave held", priority=True),
    ]

    def edited(self) -> Request | None:
        """What was typed; a part left as shown goes as it came (a body the editor only laid out
        on several lines is not an edit, and is not sent re-laid)."""
        typed = super().edited()
        if typed is None:
            return None
        line, headers, body = self.shown
        same_line = self.line.value == line
        return Request(
            self.request.method if same_line else typed.method,
            self.request.url if same_line else typed.url,
            self.request.headers if self.headers.text == headers else typed.headers,
            self.request.body if self.body.text == body else typed.body,
        )


def _name(call: Paused) -> str:
    return safe(f"{call.method} {urlsplit(call.url).path}")
