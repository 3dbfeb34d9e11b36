"""The request editor: method and URL, headers, and the body with XML highlighting, re-validated
against the schema of the endpoint the request line names as you type. Ctrl+S sends."""

from __future__ import annotations

from urllib.parse import urlsplit

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Label, OptionList, TextArea
from textual.widgets.option_list import Option

from inspector.commands.replay import Request
from inspector.commands.validate_files import TargetError, check_file, target
from inspector.ingest.catalog import Catalog
from inspector.ingest.findings import Finding
from inspector.ingest.record import Headers
from inspector.ingest.validate import Validator
from inspector.tui.document import pretty_xml
from inspector.utils.text import safe

CHECK_DEBOUNCE_S = 0.25
_SEVERITY = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def headers_text(headers: Headers) -> str:
    return "\n".join(f"{k}: {v}" for k, v in headers)


def parse_headers(text: str) -> Headers:
    out = []
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            out.append((name.strip(), value.strip()))
    return tuple(out)


def _one_long_line(body: str) -> bool:
    text = body.strip()
    return len(text) > 80 and "\n" not in text


class EditorScreen(Screen[Request | None]):
    """Dismissed with the edited request (to send), or None."""

    AUTO_FOCUS = "#body"
    BINDINGS = [
        Binding("ctrl+s", "send", "Send", priority=True),
        Binding("escape", "dismiss(None)", "Cancel", priority=True),  # before the TextArea takes it
    ]

    def __init__(
        self,
        flow_id: int,
        request: Request,
        catalog: Catalog,
        validator: Validator,
        *,
        heading: str | None = None,
        response: bool = False,
    ) -> None:
        """``heading`` replaces the replay's; ``response``: the headers and body are Xero's answer to
        the request line (which stays as it is), checked against the answer's schema."""
        super().__init__()
        self.flow_id = flow_id
        self.heading = heading
        self.response = response
        self.request = request
        self.catalog = catalog
        self.validator = validator
        self.findings: list[Finding] = []
        self.verdict = ""
        self._timer: Timer | None = None
        body = request.body.decode("utf-8", "replace") if request.body else ""
        if _one_long_line(body) and (pretty := pretty_xml(body)) is not None:
            body = pretty[0]  # one long line is no way to edit; whitespace between XML elements is free
        # What a terminal would obey (ESC, C1, bidi overrides) is shown as pictures here too, and
        # sent as shown: such a character cannot be edited safely, and no server wants it back.
        line, heads = f"{request.method} {request.url}", headers_text(request.headers)
        shown = (safe(line), safe(heads, lines=True), safe(body, lines=True))
        self.shown = shown  # as the editor first showed them
        self.pictured = shown != (line, heads, body)
        self.line = Input(shown[0], id="request-line", disabled=response)
        self.headers = TextArea(shown[1], id="headers", soft_wrap=False)
        self.body = TextArea.code_editor(shown[2], language="xml", id="body", soft_wrap=False)
        self.schema = Label(id="schema")
        self.found = OptionList(id="findings")

    def compose(self) -> ComposeResult:
        with Vertical(id="editor"):
            pictured = " · [b]controls are shown as pictures (␛) and sent as shown[/]" if self.pictured else ""
            heading = self.heading or (
                f"[b]Edit and send[/] flow #{self.flow_id} · the token and a fresh Idempotency-Key go in "
                "when it is sent · [b]Ctrl+S[/] sends · Esc cancels"
            )
            yield Label(heading + pictured)
            yield self.line
            yield self.headers
            yield self.body
            yield self.schema
            yield self.found
        yield Footer()

    def on_mount(self) -> None:
        self.body.focus()
        self.check()

    @on(TextArea.Changed)
    @on(Input.Changed, "#request-line")
    def _changed(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(CHECK_DEBOUNCE_S, self.check)

    def check(self) -> None:
        """Validate the body against the schema of the request line's endpoint."""
        self.found.clear_options()
        text = self.body.text
        try:
            t = target(self.catalog, self.line.value, response=self.response)
        except TargetError as e:
            self.findings = []
            self.verdict = "no schema" if text.strip() else "no body"
            self.schema.update(Text(f"not checked: {e}", style="dim"))
            return
        if not text.strip():
            self.findings = []
            self.verdict = "no body"
            self.schema.update(Text(f"{t.describe()}: no body to check", style="dim"))
            return
        found = check_file(self.validator, t, text.encode("utf-8"))
        self.findings = sorted(found, key=lambda f: (f.line or 0, f.column or 0))
        errors = sum(f.severity == "error" for f in self.findings)
        others = len(self.findings) - errors
        self.verdict = "valid" if not self.findings else f"{errors} error(s), {others} warning(s) or note(s)"
        style = "green" if not self.findings else "red" if errors else "yellow"
        mark = "✔" if not self.findings else "✖"
        self.schema.update(Text(f"{mark} {t.describe()}: {self.verdict}", style=style))
        for i, f in enumerate(self.findings):
            where = f"{f.line}:{f.column or 1}" if f.line else "-"
            severity = (f"{f.severity} ", _SEVERITY.get(f.severity, ""))
            line = Text.assemble((f"{where:>7} ", "dim"), severity, safe(f.message))
            self.found.add_option(Option(line, id=str(i)))

    @on(OptionList.OptionSelected, "#findings")
    def _jump(self, event: OptionList.OptionSelected) -> None:
        f = self.findings[int(event.option.id or 0)]
        if f.line:
            self.body.cursor_location = (f.line - 1, max(0, (f.column or 1) - 1))
            self.body.scroll_cursor_visible(center=True)
            self.body.focus()

    def edited(self) -> Request | None:
        method, _, url = self.line.value.strip().partition(" ")
        url = url.strip()
        if not method.isalpha() or urlsplit(url).scheme not in ("http", "https"):
            self.notify('the first line must be "METHOD https://…"', severity="error")
            return None
        text = self.body.text
        body = text.encode("utf-8") if text or self.request.body is not None else None
        return Request(method.upper(), url, parse_headers(self.headers.text), body)

    def action_send(self) -> None:
        request = self.edited()
        if request is not None:
            self.dismiss(request)
