"""What the browser needs to replay: the settings it was started with, the catalog and the
validators (loaded on first use), the session's token, and the diff screen an answer opens in."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from inspector.commands.diff import FlowDiff, render
from inspector.commands.replay import Options, Prepared, Replayer, Request, Result, prepare
from inspector.ingest.catalog import Catalog
from inspector.ingest.validate import Validator
from inspector.store.flows import StoredFlow


@dataclass(frozen=True)
class ReplaySettings:
    options: Options = field(default_factory=Options)
    catalogs: tuple[str, ...] = ()


class Replays:
    """One per app. Sends are serialised: the ingest and its validator belong to one thread at a time."""

    def __init__(self, db: str | Path, settings: ReplaySettings) -> None:
        self.db = db
        self.settings = settings
        self.options = settings.options
        self._catalog: Catalog | None = None
        self._replayer: Replayer | None = None
        self._editor_validator: Validator | None = None
        self._send_lock = threading.Lock()

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog.load(self.settings.catalogs)
        return self._catalog

    def editor_validator(self) -> Validator:
        """The editor checks on the UI thread: a validator of its own, compiled once, never shared
        with the sending thread (an lxml schema must not validate in two threads at once)."""
        if self._editor_validator is None:
            self._editor_validator = Validator.for_catalog(self.catalog)
        return self._editor_validator

    def set_token(self, token: str) -> None:
        self.options = replace(self.options, token=token.strip() or None)
        if self._replayer is not None:
            self._replayer.opts = self.options

    def prepare(self, flow: StoredFlow, request: Request) -> Prepared:
        return prepare(request, self.catalog, self.options, flow.id)

    def send(self, flow: StoredFlow, prepared: Prepared) -> Result:
        with self._send_lock:
            if self._replayer is None:
                self._replayer = Replayer(self.db, self.catalog, Validator.for_catalog(self.catalog), self.options)
            return self._replayer.send(flow, prepared)

    def close(self) -> None:
        if self._replayer is not None:
            self._replayer.close()


class DiffScreen(Screen[None]):
    """The original and its replay side by side; f shows every body line."""

    BINDINGS = [
        Binding("escape,q", "dismiss", "Back"),
        Binding("f", "full", "All lines"),
    ]

    def __init__(self, diff: FlowDiff, headline: str) -> None:
        super().__init__()
        self.diff = diff
        self.headline = headline
        self.full = False
        self.view = Static(id="diff-body")

    def compose(self) -> ComposeResult:
        yield Static(self.headline, id="diff-title")
        with VerticalScroll(id="diff"):
            yield self.view
        yield Footer()

    def on_mount(self) -> None:
        self.view.update(render(self.diff, self.full))
        self.query_one("#diff", VerticalScroll).focus()

    def action_full(self) -> None:
        self.full = not self.full
        self.view.update(render(self.diff, self.full))
