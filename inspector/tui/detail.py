"""The detail pane: request, response, findings and info tabs for the selected flow."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from inspector.store import flows as flows_mod
from inspector.store.browse import Reader
from inspector.tui import document, info
from inspector.tui.code_view import CodeView
from inspector.tui.messages import DetailLoaded
from inspector.utils.text import safe


def finding_prompt(f: dict[str, Any]) -> Text:
    where = f"{f['line']}:{f['column'] or 1}" if f["line"] else "-"
    style = document.SEVERITY_STYLE.get(f["severity"], "")
    return Text.assemble(
        (f"{f['severity']:<8}", style),
        (f"{f['rule']:<18}", "bold"),
        (f"{f['side']:<9}", "dim"),
        (f"{where:<8}", "cyan"),
        (f"{safe(f['xpath'] or ''):<32} ", "dim"),
        safe(f["message"]),
    )


class FlowDetail(Vertical):
    """Shows one flow; loading and highlighting run in a worker, never on the UI thread."""

    ALLOW_MAXIMIZE = True  # z zooms the whole pane, whichever tab has focus

    def __init__(self, reader: Reader, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.reader = reader
        self.flow: flows_mod.StoredFlow | None = None
        self.docs: dict[str, document.Document] = {}
        self.pretty: bool | None = None  # None: pretty only when sent minified

    def compose(self) -> ComposeResult:
        yield Static(id="xero-error")
        with TabbedContent(id="tabs"):
            with TabPane("Request", id="request"):
                yield CodeView(id="request-view")
            with TabPane("Response", id="response"):
                yield CodeView(id="response-view")
            with TabPane("Findings", id="findings"):
                yield OptionList(id="findings-list")
            with TabPane("Info", id="info"), VerticalScroll():
                yield Static(id="info-text")

    def on_mount(self) -> None:
        self.query_one("#xero-error", Static).display = False

    def show(self, flow_id: int | None) -> None:
        if flow_id is None:
            self.flow = None
            self._clear()
            return
        self.load(flow_id, self.pretty)

    def toggle_pretty(self) -> None:
        if self.flow is None:
            return
        shown = self.docs.get(self._side())
        self.pretty = not (shown is not None and shown.mode == "pretty")
        self.load(self.flow.id, self.pretty)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def load(self, flow_id: int, pretty: bool | None) -> None:
        with self.reader.conn() as conn:
            flow = flows_mod.load(conn, flow_id)
        if flow is None:
            return
        docs = {side: document.build(flow, side, pretty) for side in ("request", "response")}
        self.post_message(DetailLoaded(flow, docs["request"], docs["response"], pretty))

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        message.stop()
        self.flow = message.flow
        self.docs = {"request": message.request, "response": message.response}
        self.query_one("#request-view", CodeView).show(message.request)
        self.query_one("#response-view", CodeView).show(message.response)
        row = message.flow.row
        banner = self.query_one("#xero-error", Static)
        if row["api_error"]:
            banner.update(Text.assemble(("Xero says: ", "bold"), safe(row["api_error"])))
        elif row["error"]:
            banner.update(Text.assemble(("No answer: ", "bold"), safe(row["error"])))
        banner.display = bool(row["api_error"] or row["error"])
        findings = self.query_one("#findings-list", OptionList)
        findings.clear_options()
        findings.add_options([Option(finding_prompt(f), id=str(i)) for i, f in enumerate(message.flow.findings)])
        tabs = self.query_one("#tabs", TabbedContent)
        tabs.get_tab("findings").label = f"Findings ({len(message.flow.findings)})"
        self.query_one("#info-text", Static).update(info.render(message.flow))

    def _clear(self) -> None:
        self.docs = {}
        for view in self.query(CodeView):
            view.show(document.Document())
        self.query_one("#findings-list", OptionList).clear_options()
        self.query_one("#info-text", Static).update("")
        self.query_one("#xero-error", Static).display = False

    def _side(self) -> str:
        active = self.query_one("#tabs", TabbedContent).active
        return active if active in ("request", "response") else "request"

    @on(TabbedContent.TabActivated, "#tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """The Findings tab takes the focus (on its first finding), so Enter jumps at once."""
        if event.pane.id != "findings":
            return
        findings = self.query_one("#findings-list", OptionList)
        if findings.option_count:
            if findings.highlighted is None:
                findings.highlighted = 0
            findings.focus()

    @on(OptionList.OptionSelected, "#findings-list")
    def _finding_chosen(self, event: OptionList.OptionSelected) -> None:
        if self.flow is not None and event.option.id is not None:
            self.jump_to(self.flow.findings[int(event.option.id)])

    def jump_to(self, finding: dict[str, Any]) -> int | None:
        """Open the finding's side and highlight its line; the document row, if placed."""
        side = finding["side"] if finding["side"] in ("request", "response") else "request"
        doc = self.docs.get(side)
        if doc is None:
            return None
        row = doc.finding_rows.get((finding["line"], finding["column"], finding["xpath"]))
        self.query_one("#tabs", TabbedContent).active = side
        view = self.query_one(f"#{side}-view", CodeView)
        if row is not None:
            view.jump(row)
        view.focus()
        return row
