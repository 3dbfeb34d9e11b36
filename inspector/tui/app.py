"""InspectorApp: the flow list, its filter, the detail of the selected flow, live.

All SQLite work happens in thread workers that post their results back as messages
(messages.py); the UI thread only draws. Edits (mark, comment, delete) go through
``inspector.store.edits`` on a connection of their own.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Static, TabbedContent, Tabs

from inspector.commands import export
from inspector.commands.diff import FlowDiff, compare
from inspector.commands.replay import NeedsToken, Prepared, ReplayError, Request, request_of, target_url
from inspector.ingest.validate import Validator
from inspector.proxy import break_rules, fault_rules
from inspector.store import controls, edits, flows, pauses
from inspector.store.browse import (
    MARKED,
    FlowQuery,
    Reader,
    RecorderStatus,
    data_version,
    max_id,
    recorder_status,
)
from inspector.store.database import StoreError, open_db, open_for_reading, tenant_names
from inspector.store.query import FilterError, stopped
from inspector.tui.detail import FlowDetail
from inspector.tui.dialogs import ConfirmScreen, ExportChoice, ExportScreen, HelpScreen, TextPrompt
from inspector.tui.editor import EditorScreen
from inspector.tui.flow_list import PAGE, FlowList, header_text
from inspector.tui.messages import (
    ColumnsChanged,
    FilterApplied,
    FilterFailed,
    FilterPreview,
    FlowChosen,
    FlowHighlighted,
    Polled,
)
from inspector.tui.orgs import OrganisationsScreen
from inspector.tui.paused import PausedCalls
from inspector.tui.replaying import DiffScreen, Replays, ReplaySettings
from inspector.utils.text import plural, safe

T = TypeVar("T")
POLL_S = 0.5
FILTER_DEBOUNCE_S = 0.35
DETAIL_DEBOUNCE_S = 0.12
FILTER_HINT = "filter, e.g.  ~api xpm & ~v   ~err   ~tenant Demo   job.api   (? for help)"
LIST_ACTIONS = {
    "focus_filter",
    "toggle_follow",
    "mark",
    "comment",
    "curl",
    "export",
    "replay",
    "edit",
    "delete",
    "delete_marked",
    "pretty",
    "organisations",
    "maximize_detail",
    "tab",
    "reload",
    "leave",
    "goto",
    "faults",
    "breakpoints",
    "resume",
    "resume_all",
    "kill",
}
PRESETS = (
    ("Failed calls", "~failed", "every failed call: errors, 429s, no answer, retired endpoints"),
    ("Xero errors", "~err", "error answers: HTTP 4xx/5xx and Xero errors inside a 200"),
    ("Schema findings", "~v", "flows with findings"),
    ("Rate limited", "~rl", "429s"),
    ("Marked", "~marked", "flows you marked"),
    ("Everything", "", "clear the filter"),
)


class InspectorApp(App[None]):
    TITLE = "xero-inspector"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", key_display="/"),
        Binding("F", "toggle_follow", "Follow"),
        Binding("m", "mark", "Mark"),
        Binding("n", "comment", "Comment"),
        Binding("c", "curl", "Copy curl"),
        Binding("r", "replay", "Replay"),
        Binding("e", "edit", "Edit+send"),
        Binding("E", "export", "Export"),
        Binding("d", "delete", "Delete"),
        Binding("D", "delete_marked", "Delete marked", show=False),
        Binding("p", "pretty", "Pretty/as sent"),
        Binding("o", "organisations", "Orgs"),
        Binding("i", "faults", "Faults", show=False),
        Binding("b", "breakpoints", "Breakpoints", show=False),
        Binding("a", "resume", "Resume held", show=False),
        Binding("A", "resume_all", "Resume all held", show=False),
        Binding("x", "kill", "Kill held", show=False),
        Binding("z", "maximize_detail", "Zoom", show=False),
        Binding("1", "tab('request')", "Request", show=False),
        Binding("2", "tab('response')", "Response", show=False),
        Binding("3", "tab('findings')", "Findings", show=False),
        Binding("4", "tab('info')", "Info", show=False),
        Binding("ctrl+r", "reload", "Reload", show=False),
        Binding("escape", "leave", "Back", show=False),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]
    # Short enough to stay on one line in an 80-column terminal.
    HELP_KEYS = [
        ("↑ ↓  j k", "move in the list (the mouse works too)"),
        ("PgUp PgDn Home End", "a page up or down, the oldest, the newest"),
        ("Enter", "the flow's detail; Tab moves between panes"),
        ("1 2 3 4", "request, response, findings, info tab"),
        ("/", "filter (Enter applies; a mistake shows in place)"),
        ("F", "follow: keep the newest flow selected"),
        ("m  n", "mark or unmark; comment"),
        ("c", "copy the request as curl (to the clipboard)"),
        ("r", "replay the flow, then see the diff"),
        ("e", "edit the request, checked as you type; Ctrl+S sends"),
        ("E", "export marked, this or filtered flows"),
        ("d  D", "delete this flow; delete every marked flow"),
        ("p", "body pretty-printed or as sent"),
        ("z", "zoom the detail pane"),
        ("o", "organisations: calls, limits left, 429s"),
        ("i", "fault rules for the proxy (Xero failing on purpose)"),
        ("b  a A x", "breakpoints; let a held call go, all go; kill it"),
        ("Enter on a finding", "jump to its line in the body"),
        ("Ctrl+R", "reload rows another program changed"),
        ("Ctrl+P", "command palette"),
        ("q", "quit"),
    ]

    def __init__(
        self,
        db: str | Path,
        *,
        proxy: subprocess.Popen[bytes] | None = None,
        proxy_log: str = "",
        replay: ReplaySettings | None = None,
    ) -> None:
        super().__init__()
        self.db_path = Path(db)
        self.replays = Replays(self.db_path, replay or ReplaySettings())
        self.reader = Reader(self.db_path)
        self.proxy = proxy
        self.proxy_log = proxy_log
        self.follow = False
        self.filter_seq = 0
        self.recorder: RecorderStatus | None = None
        self._poll_conn = open_for_reading(self.db_path)
        self._count_conn = open_for_reading(self.db_path)
        # Each connection is used by one worker at a time, under its lock; closing takes the
        # lock too, since closing a connection while another thread uses it crashes the process.
        self._poll_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closing = False
        self._write_conn: sqlite3.Connection | None = None
        self._version = -1
        self._requested = ""
        self._applied = ""  # the last filter that ran to the end: put back when one is stopped
        self._filter_running: int | None = None  # the filter_seq whose count is under way
        self._filter_timer: Timer | None = None
        self._detail_timer: Timer | None = None
        self._proxy_reported = False
        # Held, not queried: App.query_one searches the active screen, which is a dialog at times.
        self.filter_input = Input(placeholder=FILTER_HINT, id="filter")
        self.filter_error = Static(id="filter-error")
        self.list_header = Static(id="list-header")
        self.paused_calls = PausedCalls(self._with_writer, self.replays, id="paused")
        self.flows = FlowList(self.reader, id="flows")
        self.detail = FlowDetail(self.reader, id="detail")
        self.status = Static(id="status")

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.filter_input
        yield self.filter_error
        yield self.paused_calls
        yield self.list_header
        yield self.flows
        yield self.detail
        yield self.status
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The list's actions belong to the main screen: hidden under a dialog or the orgs panel."""
        return not (action in LIST_ACTIONS and len(self.screen_stack) > 1)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every toast says what it says: URLs, Xero's texts and errors carry traffic, so nothing
        in a message is read as markup or reaches the terminal as a control."""
        super().notify(safe(message, lines=True), title=safe(title), severity=severity, timeout=timeout, markup=False)

    def on_mount(self) -> None:
        self.sub_title = str(self.db_path)
        self.list_header.update(header_text(self.flows.columns))
        self.flows.focus()
        self.apply_filter("")
        self.set_interval(POLL_S, self.poll)

    def on_columns_changed(self, message: ColumnsChanged) -> None:
        self.list_header.update(header_text(message.columns))

    def on_unmount(self) -> None:
        self._closing = True
        self._count_conn.interrupt()  # a count over a million rows is not waited for
        self.reader.close()
        self.replays.close()
        with self._poll_lock:
            self._poll_conn.close()
        with self._count_lock:
            self._count_conn.close()
        with self._write_lock:
            if self._write_conn is not None:
                self._write_conn.close()

    # -- filter ---------------------------------------------------------------------------
    def apply_filter(self, expr: str) -> None:
        self._requested = expr.strip()
        try:
            query = FlowQuery(expr)
        except FilterError as e:
            self._show_filter_error(str(e))
            return
        self._run_filter(query)

    def _run_filter(self, query: FlowQuery, cancellable: bool = True) -> None:
        self.filter_seq += 1
        # Escape cancels a filter the user typed, not the known-good one put back after a stop.
        self._filter_running = self.filter_seq if cancellable else None
        self._count_conn.interrupt()  # a count for a filter nobody wants any more
        selected = self.flows.selected
        self.count(self.filter_seq, query, None if self.follow or selected is None else selected.id)

    def cancel_filter(self, why: str) -> bool:
        """Stop the filter under way (Escape), show why, and put the last one that ran back."""
        if self._filter_running != self.filter_seq:
            return False
        self.filter_seq += 1  # whatever the cancelled count still posts is ignored
        self._count_conn.interrupt()
        self._show_filter_error(why)
        self._restore_filter()
        return True

    def _restore_filter(self) -> None:
        """The list goes back to the last filter that ran to the end (a preview of the stopped
        one may be showing); the error stays until the user types."""
        self._filter_running = None
        if self.flows.flow_query.expr != self._applied:
            self._run_filter(FlowQuery(self._applied), cancellable=False)

    @work(thread=True, exclusive=True, group="count", exit_on_error=False)
    def count(self, seq: int, query: FlowQuery, keep: int | None) -> None:
        with self._count_lock:
            if self._closing:
                return
            conn = self._count_conn
            try:
                top = max_id(conn)
                # A page first: on a million flows counting takes longer than reading it.
                rows, at = query.ending_at(conn, keep, PAGE) if keep is not None else ([], None)
                if at is None:  # the list opens at the newest
                    keep, rows = None, query.last(conn, PAGE, top)
                    at = len(rows) - 1
                self.post_message(FilterPreview(seq, query, rows, at, top))
                total = query.count(conn, 0, top)
                # ending_at found ``keep`` among the matches: only its place is left to count.
                cursor = query.position(conn, keep) if keep is not None else None
            except sqlite3.OperationalError as e:
                if "interrupt" in str(e):
                    return
                why = stopped(e)
                self.post_message(FilterFailed(query.expr, str(why) if why else f"cannot run this filter: {e}", seq))
                return
        self.post_message(FilterApplied(seq, query, total, top, cursor, rows if keep is None else []))

    def on_filter_preview(self, message: FilterPreview) -> None:
        if message.generation != self.filter_seq:
            return
        if self._filter_running == message.generation:
            self._show_filter_error(None)
        self.flows.preview(message.query, message.rows, message.cursor, message.max_id)
        self._render_status()

    def on_filter_applied(self, message: FilterApplied) -> None:
        if message.generation != self.filter_seq:
            return
        if self._filter_running == message.generation:  # not a restore: any earlier error is past
            self._show_filter_error(None)
        self._filter_running = None
        self._applied = message.query.expr
        self.flows.settle(message.query, message.total, message.max_id, message.cursor, message.tail)
        self._render_status()

    def on_filter_failed(self, message: FilterFailed) -> None:
        if message.generation not in (-1, self.filter_seq):
            return
        self._show_filter_error(message.error)
        if message.generation != -1:
            self._restore_filter()

    def _show_filter_error(self, error: str | None) -> None:
        box = self.filter_error
        box.update(Text(f"✖ {safe(error)}") if error else "")
        box.set_class(bool(error), "-shown")
        self.filter_input.set_class(bool(error), "-bad-filter")

    @on(Input.Changed, "#filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        if event.value.strip() == self._requested:  # set_filter already applied it
            return
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DEBOUNCE_S, lambda: self.apply_filter(event.value))

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self.apply_filter(event.value)
        self.flows.focus()

    def set_filter(self, expr: str) -> None:
        self.filter_input.value = expr
        self.apply_filter(expr)

    # -- live -----------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def poll(self) -> None:
        with self._poll_lock:
            if self._closing:
                return
            conn = self._poll_conn
            version = data_version(conn)
            if version == self._version:
                return
            self._version = version
            seq, query, seen = self.filter_seq, self.flows.flow_query, self.flows.upto
            top = max_id(conn)
            added = query.count(conn, seen, top) if top > seen else 0
            polled = Polled(seq, added, top, recorder_status(conn), tenant_names(conn), pauses.paused(conn))
        self.post_message(polled)

    def on_polled(self, message: Polled) -> None:
        self.recorder = message.recorder
        if message.paused != self.paused_calls.calls:
            self.paused_calls.show(message.paused)
        if message.names != self.flows.names:
            self.flows.set_names(message.names)
        if message.generation == self.filter_seq and message.max_id > self.flows.upto:
            self.flows.grow(message.added, message.max_id)
            if self.follow:
                self.flows.action_last()
        self._render_status()
        if self.proxy is not None and self.proxy.poll() is not None and not self._proxy_reported:
            self._proxy_reported = True
            self.notify(f"the proxy exited ({self.proxy.returncode}); its log: {self.proxy_log}", severity="error")

    def _render_status(self) -> None:
        r = self.recorder
        if r is None:
            rec = "○ no recorder has written to this file yet"
        elif r.live:
            rec = f"● recording on {r.listen} · {r.recorded:,} recorded · {r.dropped:,} dropped"
        else:
            rec = f"○ recorder stopped (was {r.listen}; {r.recorded:,} recorded, {r.dropped:,} dropped)"
        expr = self.flows.flow_query.expr
        if self.flows.counted:
            total = self.flows.total
            shown = plural(total, "flow") + (f" {'matches' if total == 1 else 'match'} {expr!r}" if expr else "")
        else:
            shown = "counting the flows" + (f" that match {expr!r}" if expr else "") + "…"
        follow = (" · ", ("FOLLOW", "bold")) if self.follow else ()
        # Text, not markup: the listen address comes from the file, the filter from the keyboard.
        self.status.update(Text.assemble(safe(f"{rec} · {shown}"), *follow, safe(f" · {self.db_path}")))
        self.status.set_class(bool(r and r.live), "-live")

    # -- selection and detail -------------------------------------------------------------
    def on_flow_highlighted(self, message: FlowHighlighted) -> None:
        if self.follow and self.flows.cursor < self.flows.total - 1:
            self.follow = False
            self._render_status()
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._detail_timer = self.set_timer(DETAIL_DEBOUNCE_S, lambda: self.detail.show(message.flow_id))

    def on_flow_chosen(self, message: FlowChosen) -> None:
        self.detail.query_one(Tabs).focus()

    def action_tab(self, tab: str) -> None:
        self.detail.query_one(TabbedContent).active = tab

    @work(thread=True, exclusive=True, group="goto", exit_on_error=False)
    def action_goto(self, flow_id: int) -> None:
        with self.reader.conn() as conn:
            index = self.flows.flow_query.index_of(conn, flow_id)
        if index is None:
            self.call_from_thread(self.notify, f"flow #{flow_id} is hidden by the filter", severity="warning")
        else:
            self.call_from_thread(self.flows.jump, index)
            self.call_from_thread(self.flows.focus)

    # -- actions ----------------------------------------------------------------------------
    def action_focus_filter(self) -> None:
        self.filter_input.focus()

    def action_leave(self) -> None:
        if self.cancel_filter("filter cancelled (Esc)"):
            return
        if self.screen.maximized is not None:
            self.screen.minimize()
        self.flows.focus()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self.flows.action_last()
        self._render_status()

    def action_pretty(self) -> None:
        self.detail.toggle_pretty()

    def action_maximize_detail(self) -> None:
        if self.screen.maximized is not None:
            self.screen.minimize()
            self.flows.focus()
        else:
            # focus first: left on a widget the zoom hides, keys would go on typing into the filter
            self.detail.query_one(Tabs).focus()
            self.screen.maximize(self.detail, container=False)

    def action_reload(self) -> None:
        self.flows.forget()
        if (row := self.flows.selected) is not None:
            self.detail.show(row.id)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.HELP_KEYS))

    def action_organisations(self) -> None:
        self.push_screen(OrganisationsScreen(self.reader))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, expr, help_text in PRESETS:
            description = f"{expr or '(none)'}: {help_text}"
            yield SystemCommand(f"Filter: {title}", description, lambda e=expr: self.set_filter(e))
        yield SystemCommand("Follow new flows", "keep the newest flow selected", self.action_toggle_follow)
        yield SystemCommand("Organisations", "calls, limits left and 429s per tenant", self.action_organisations)
        yield SystemCommand("Export", "marked, selected or filtered flows: HAR, curl, mitmproxy", self.action_export)
        yield SystemCommand("Copy as curl", "the selected request as a curl command", self.action_curl)
        yield SystemCommand("Replay", "send the selected request again and compare", self.action_replay)
        yield SystemCommand("Edit and send", "edit the selected request, checked as you type", self.action_edit)

    # -- edits (each in a worker, on the write connection) --------------------------------
    def _writer(self) -> sqlite3.Connection:
        if self._closing:
            raise StoreError("the browser is closing")
        if self._write_conn is None:
            self._write_conn = open_db(self.db_path, create=False).conn
        return self._write_conn

    def action_mark(self) -> None:
        row = self.flows.selected
        if row is not None:
            ids, marked = [row.id], not row.marked
            self._edit(lambda conn: edits.set_marked(conn, ids, marked))

    def action_comment(self) -> None:
        row = self.flows.selected
        if row is None:
            return
        fid = row.id

        def done(text: str | None) -> None:
            if text is not None:
                self._edit(lambda conn: edits.set_comment(conn, [fid], text))

        self.push_screen(TextPrompt(f"Comment on flow #{fid}", row.comment or "", "what you found"), done)

    def action_delete(self) -> None:
        row = self.flows.selected
        if row is None:
            return
        fid = row.id

        def done(yes: bool | None) -> None:
            if yes:
                self._delete([fid])

        self.push_screen(ConfirmScreen(f"Delete flow #{fid} ({row.method} {row.path})?"), done)

    @work(thread=True, group="edit", exit_on_error=False)
    def action_delete_marked(self) -> None:
        with self.reader.conn() as conn:
            ids = list(flows.flow_ids(conn, MARKED.where))
        if not ids:
            self.call_from_thread(self.notify, "no marked flows", severity="warning")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self._delete(ids)

        self.call_from_thread(self.push_screen, ConfirmScreen(f"Delete {len(ids)} marked flow(s)?"), done)

    def action_faults(self) -> None:
        """Fault rules for the proxy recording into this file: written into it, read by the
        proxy within a second (store/controls.py)."""
        self._ask_rules(
            "Fault rules for the proxy recording here, '; ' between them (empty: none)",
            controls.faults,
            controls.set_faults,
            fault_rules.parse,
            "rate-limit ~res job.api times 1; xpm-error ~m POST every 3",
            "fault rules",
        )

    def action_breakpoints(self) -> None:
        """Breakpoints for the proxy recording into this file, the same way as fault rules."""
        self._ask_rules(
            "Breakpoints: calls to hold, '; ' between them; 'response FILTER' holds Xero's answer (empty: none)",
            controls.breaks,
            controls.set_breaks,
            break_rules.parse,
            "~api xpm & ~m POST; response ~u job.api/get",
            "breakpoints",
        )

    def _ask_rules(
        self,
        title: str,
        read: Callable[[sqlite3.Connection], list[str]],
        write: Callable[[sqlite3.Connection, list[str]], None],
        parse: Callable[[str], object],
        placeholder: str,
        what: str,
    ) -> None:
        with self.reader.conn() as conn:
            current = read(conn)

        def done(text: str | None) -> None:
            if text is None:
                return
            rules = [r.strip() for r in text.split(";") if r.strip()]
            try:
                for rule in rules:
                    parse(rule)
            except ValueError as e:  # FaultError, BreakError: one line naming the rule
                self.notify(str(e), severity="error", timeout=10)
                return
            self._set_rules(write, rules, what)

        self.push_screen(TextPrompt(title, "; ".join(current), placeholder), done)

    @work(thread=True, group="edit", exit_on_error=False)
    def _set_rules(self, write: Callable[[sqlite3.Connection, list[str]], None], rules: list[str], what: str) -> None:
        with self._write_lock:
            write(self._writer(), rules)
        said = (
            f"{what} set ({len(rules)}): a proxy recording into this file applies them within a second"
            if rules
            else f"no {what}"
        )
        self.call_from_thread(self.notify, said)

    def _with_writer(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """A change through the browser's write connection, from a worker (paused calls)."""
        with self._write_lock:
            return change(self._writer())

    def action_resume(self) -> None:
        self.paused_calls.resume()

    def action_resume_all(self) -> None:
        self.paused_calls.resume_all()

    def action_kill(self) -> None:
        self.paused_calls.kill()

    @work(thread=True, group="edit", exit_on_error=False)
    def _edit(self, change: Callable[[sqlite3.Connection], int]) -> None:
        """A change in place: the rows on screen are read again."""
        with self._write_lock:
            change(self._writer())
        self.call_from_thread(self.action_reload)

    @work(thread=True, group="edit", exit_on_error=False)
    def _delete(self, ids: list[int]) -> None:
        """Rows gone: the list is counted again under the same filter."""
        with self._write_lock:
            n = edits.delete_flows(self._writer(), ids)
        self.call_from_thread(self.notify, f"deleted {n} flow(s)")
        self.call_from_thread(self.apply_filter, self.flows.flow_query.expr)

    # -- out: curl and HAR -------------------------------------------------------------------
    @work(thread=True, group="out", exit_on_error=False)
    def action_curl(self) -> None:
        row = self.flows.selected
        if row is None:
            self.call_from_thread(self.notify, "no flow selected", severity="warning")
            return
        with self.reader.conn() as conn:
            flow = flows.load(conn, row.id)
        if flow is None:
            return
        command = export.curl(flow)
        self.call_from_thread(self.copy_to_clipboard, command)
        # In a web page the clipboard is the web browser's to give (it may refuse): the text is shown either way.
        where = (
            "offered to the web browser's clipboard (it may refuse it; here it is)"
            if self.is_web
            else "copied to the clipboard"
        )
        self.call_from_thread(self.notify, f"curl for #{row.id} {where}:\n{command[:300]}")

    @work(thread=True, group="out", exit_on_error=False)
    def action_export(self) -> None:
        with self.reader.conn() as conn:
            marked = MARKED.count(conn, 0, max_id(conn))
        row = self.flows.selected
        selected = f"the {marked} marked flow(s)" if marked else (f"flow #{row.id}" if row else "no flow")
        filtered = f"all {plural(self.flows.total, 'flow')} the filter shows"
        path = str(self.db_path.with_suffix(".har"))
        query = self.flows.flow_query

        def done(choice: ExportChoice | None) -> None:
            if choice is not None:
                self._write_export(choice, query, marked > 0, row.id if row else None)

        self.call_from_thread(self.push_screen, ExportScreen(path, selected, filtered), done)

    @work(thread=True, group="out", exit_on_error=False)
    def _write_export(self, choice: ExportChoice, query: FlowQuery, marked: bool, current: int | None) -> None:
        try:
            with self.reader.conn() as conn:
                if choice.scope == "filtered":
                    ids: Iterable[int] = flows.flow_ids(conn, query.where)
                elif marked:
                    ids = flows.flow_ids(conn, MARKED.where)
                else:
                    ids = [current] if current is not None else []
                n = export.write_file(conn, choice.format, ids, choice.path)
        except OSError as e:
            self.call_from_thread(self.notify, f"cannot write {choice.path}: {e.strerror or e}", severity="error")
            return
        self.call_from_thread(self.notify, f"{n} flow(s) written to {choice.path}")

    # -- replay ------------------------------------------------------------------------------
    def action_replay(self) -> None:
        self._replay(edit=False)

    def action_edit(self) -> None:
        self._replay(edit=True)

    def _replay(self, edit: bool) -> None:
        row = self.flows.selected
        if row is None:
            self.notify("no flow selected", severity="warning")
            return
        self._load_for_replay(row.id, edit)

    @work(thread=True, group="replay", exit_on_error=False)
    def _load_for_replay(self, fid: int, edit: bool) -> None:
        with self.reader.conn() as conn:
            flow = flows.load(conn, fid)
        if flow is None:
            return
        try:
            request = request_of(flow)
            validator = self.replays.editor_validator() if edit else None
        except (ReplayError, OSError, ValueError) as e:  # a flow that cannot be sent; a broken user catalog
            self.call_from_thread(self.notify, str(e), severity="error")
            return
        if validator is None:
            self.call_from_thread(self._prepare_and_send, flow, request)
        else:
            self.call_from_thread(self._open_editor, flow, request, validator)

    def _open_editor(self, flow: flows.StoredFlow, request: Request, validator: Validator) -> None:
        def edited(req: Request | None) -> None:
            if req is not None:
                self._prepare_and_send(flow, req)

        self.push_screen(EditorScreen(flow.id, request, self.replays.catalog, validator), edited)

    def _prepare_and_send(self, flow: flows.StoredFlow, request: Request) -> None:
        try:
            prepared = self.replays.prepare(flow, request)
        except NeedsToken:

            def token(value: str | None) -> None:
                if value and value.strip():
                    self.replays.set_token(value)
                    self._prepare_and_send(flow, request)

            title = f"Flow #{flow.id} was recorded with its token redacted: an access token for replays"
            self.push_screen(TextPrompt(title, "", "kept in memory for this session only", password=True), token)
            return
        except ReplayError as e:
            self.notify(str(e), severity="error")
            return
        for warning in prepared.warnings:
            self.notify(warning, severity="warning")
        if not prepared.request.writes:
            self._send(flow, prepared)
            return
        org = flow.tenant_name or flow.row.get("tenant_id") or "no organisation named"
        r = prepared.request

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._send(flow, prepared)

        wire = target_url(r.url, self.replays.options.to)
        # Say where it really goes: with --to that is not Xero, whatever the recorded URL says.
        where = f"\nvia {wire} (--to)" if wire != r.url else ""
        question = f"Send {r.method} {r.url}{where}\nto {org}?\nIt creates or changes data in that organisation."
        self.push_screen(ConfirmScreen(question), confirmed)

    @work(thread=True, group="replay", exit_on_error=False)
    def _send(self, flow: flows.StoredFlow, prepared: Prepared) -> None:
        self.call_from_thread(self.notify, f"replaying #{flow.id}: {prepared.request.method} {prepared.request.url}")
        try:
            result = self.replays.send(flow, prepared)
        except (ReplayError, OSError, StoreError) as e:
            self.call_from_thread(self.notify, f"replay of #{flow.id} failed: {e}", severity="error")
            return
        with self.reader.conn() as conn:
            original, answer = flows.load(conn, flow.id), flows.load(conn, result.replay)
        if original is None or answer is None:
            return
        headline = (
            f"[b]#{result.original} → #{result.replay}[/]: {result.before} → {result.after} "
            f"([b]{result.verdict}[/]) · Esc back · f all lines"
        )
        diff = compare(original, answer)
        self.call_from_thread(self._show_diff, diff, headline)

    def _show_diff(self, diff: FlowDiff, headline: str) -> None:
        self.push_screen(DiffScreen(diff, headline))  # widgets are built on the UI thread
        self.action_reload()
