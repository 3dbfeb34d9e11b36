"""Modal screens: help, confirmation, a line of text (comment), HAR export."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static

from inspector.commands.export import FORMATS
from inspector.store import query
from inspector.utils.text import safe


def _two_columns(rows: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for left, right in rows:
        table.add_row(left, right)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.bindings = bindings

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static("[b]Keys[/]", classes="title")
            yield Static(_two_columns(self.bindings))
            yield Static("\n[b]Filters[/]: type them in the bar at the top (/); Enter applies", classes="title")
            yield Static(_two_columns(query.HELP))
            yield Static("\n" + query.HELP_NOTES, markup=False)
            yield Static("[dim]Esc closes; Ctrl+P opens the command palette.[/]")


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [Binding("escape,n", "dismiss(False)", "No"), Binding("y", "dismiss(True)", "Yes")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(safe(self.question, lines=True), markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TextPrompt(ModalScreen[str | None]):
    """One line of text; Enter keeps it, Esc cancels (None)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "", password: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.password = password

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(safe(self.title_text, lines=True), markup=False)
            yield Input(self.value, placeholder=self.placeholder, password=self.password, id="text")
            yield Label("[dim]Enter saves · Esc cancels[/]")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)


@dataclass(frozen=True)
class ExportChoice:
    path: str
    scope: str  # selected | filtered
    format: str = "har"  # har | curl | mitm (export.FORMATS)


_FORMAT_LABELS = {"har": "HAR 1.2 (DevTools, Charles)", "curl": "curl script", "mitm": "mitmproxy flows"}


class ExportScreen(ModalScreen[ExportChoice | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, path: str, selected: str, filtered: str) -> None:
        super().__init__()
        self.path = path
        self.selected_label = selected
        self.filtered_label = filtered

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Export")
            with RadioSet(id="scope"):
                yield RadioButton(self.selected_label, value=True, id="selected")
                yield RadioButton(self.filtered_label, id="filtered")
            with RadioSet(id="format"):
                for i, (fmt, label) in enumerate(_FORMAT_LABELS.items()):
                    yield RadioButton(label, value=i == 0, id=fmt)
            yield Input(self.path, id="path")
            yield Label("[dim]Enter exports · Esc cancels · secrets stay redacted[/]")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    @on(RadioSet.Changed, "#format")
    def _format_changed(self, event: RadioSet.Changed) -> None:
        """The file name follows the format, as a save dialog's does."""
        path = self.query_one("#path", Input)
        stem, dot, ext = path.value.rpartition(".")
        if dot and "." + ext in FORMATS.values() and event.pressed.id:
            path.value = stem + FORMATS[event.pressed.id]

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        scope = self.query_one("#scope", RadioSet).pressed_button
        fmt = self.query_one("#format", RadioSet).pressed_button
        if event.value.strip():
            self.dismiss(
                ExportChoice(
                    event.value.strip(),
                    scope.id if scope is not None and scope.id else "selected",
                    fmt.id if fmt is not None and fmt.id else "har",
                )
            )
