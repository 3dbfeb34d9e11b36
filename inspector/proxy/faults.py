"""The Faults addon: Xero failing on purpose, for calls that match a rule (``proxy --fault``).

A call to a Xero host is tested against the rules in order, in the request hook, before it
leaves: the first rule that matches and fires answers in Xero's place (or delays the call, or
drops it). The flow is marked, so the recorder stores it as injected and no report takes it
for Xero's answer. With no rules, the hook returns at once.

Rules come from the options (``--fault``, ``--faults``) and from the browser, which writes
them into the recording (``store/controls.py``); a thread reads that every second.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions, http

from inspector.ingest.pipeline import Ingest
from inspector.ingest.row import FlowRow
from inspector.proxy import capture
from inspector.proxy.fault_rules import FaultError, FaultRule, answer, load_file, parse
from inspector.proxy.xero_scope import XeroScope
from inspector.store import controls
from inspector.store.database import StoreError, open_for_reading
from inspector.store.live import LiveMatcher
from inspector.store.query import Where
from inspector.utils.first_traceback import FirstTraceback
from inspector.utils.text import safe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Active:
    """The rules in force, swapped whole (the poller thread writes, the event loop reads)."""

    rules: list[FaultRule] = field(default_factory=list)
    wheres: list[Where] = field(default_factory=list)
    needs_body: bool = False

    @classmethod
    def of(cls, rules: list[FaultRule]) -> _Active:
        wheres = [r.where for r in rules]
        return cls(rules, wheres, LiveMatcher.reads_the_body(wheres))


class Faults:
    """Answers, delays or drops Xero calls that match ``inspector_fault`` rules."""

    def __init__(self, scope: XeroScope) -> None:
        self.scope = scope
        self.active = _Active()
        self._options: list[FaultRule] = []  # --fault and --faults
        self._browser: list[FaultRule] = []  # set from the browser, read from the file
        self._browser_texts: list[str] = []
        self._matcher: LiveMatcher | None = None
        self._ingest: Ingest | None = None
        self._first = FirstTraceback()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def load(self, loader: Any) -> None:
        loader.add_option(
            "inspector_fault",
            Sequence[str],
            [],
            "Fault rules, each 'KIND [OPTIONS] [FILTER] [times N | every N | p=X]' "
            "(rate-limit, token-expired, wrong-tenant, xpm-error, unavailable, delay MS, drop).",
        )
        loader.add_option("inspector_faults_file", str, "", 'A TOML file of fault rules: faults = ["...", ...].')

    def configure(self, updated: set[str]) -> None:
        if not {"inspector_fault", "inspector_faults_file"} & updated:
            return
        try:
            rules = [parse(text) for text in ctx.options.inspector_fault]
            if ctx.options.inspector_faults_file:
                rules += load_file(ctx.options.inspector_faults_file)
        except FaultError as e:
            raise exceptions.OptionsError(str(e)) from e
        self._options = rules
        for rule in rules:
            log.info("fault rule: %s", safe(rule.describe()))
        self.active = _Active.of([*self._options, *self._browser])

    def running(self) -> None:
        db = getattr(ctx.options, "inspector_db", "")
        if db and self._poller is None:
            self._stop.clear()
            self._poller = threading.Thread(target=self._poll, args=(Path(db),), name="faults-poller", daemon=True)
            self._poller.start()

    def done(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
            self._poller = None
        if self._matcher is not None:
            self._matcher.close()
            self._matcher = None

    def _poll(self, db: Path) -> None:
        """Read the browser's rules from the file now and every second after. Each read opens
        and closes its own connection: one held open would keep the recorder, closing last,
        from folding the WAL back into the file when the proxy stops."""
        while True:
            try:
                if db.exists():
                    with closing(open_for_reading(db)) as conn:
                        self.take(controls.faults(conn))
            except StoreError as e:
                log.debug("fault rules from the browser not read: %s", e)
            except Exception as e:  # never let the poller die quietly
                log.error("fault rules from the browser not read: %s", e, exc_info=self._first(e))
            if self._stop.wait(controls.POLL_S):
                return

    def take(self, texts: list[str]) -> None:
        """The browser's rules, when they changed: parsed (one that does not is logged and skipped)."""
        if texts == self._browser_texts:
            return
        rules = []
        for text in texts:
            try:
                rules.append(parse(text))
            except FaultError as e:
                log.error("fault rule from the browser skipped: %s", e)
        self._browser, self._browser_texts = rules, texts
        log.info("fault rules from the browser: %s", safe("; ".join(r.describe() for r in rules)) or "none")
        self.active = _Active.of([*self._options, *self._browser])

    async def request(self, flow: http.HTTPFlow) -> None:
        active = self.active
        if not active.rules or flow.response is not None or not self.scope.hosts.matches(flow.request.pretty_host):
            return
        try:
            rule, row = self._first_firing(flow, active)
        except Exception as e:  # a rule must never break the traffic: the call goes on untouched
            log.error("fault rules not applied to %s: %s", _where(flow), e, exc_info=self._first(e))
            return
        if rule is None:
            return
        log.info("fault injected: %s on %s", rule.kind, _where(flow))
        flow.metadata[capture.INJECTED] = rule.kind
        if rule.kind == "delay":
            await asyncio.sleep(rule.delay_ms / 1000)
        elif rule.kind == "drop":
            flow.kill()
        else:
            made = answer(rule, row)
            headers = http.Headers([(k.encode(), v.encode()) for k, v in made.headers])
            flow.response = http.Response.make(made.status, made.body, headers)

    def _first_firing(self, flow: http.HTTPFlow, active: _Active) -> tuple[FaultRule | None, FlowRow]:
        """The first rule that matches this call and fires on it, and the call as a flow row."""
        if self._matcher is None:
            self._matcher = LiveMatcher()
        if self._ingest is None or self._ingest.catalog is not self.scope.catalog:
            self._ingest = Ingest(self.scope.catalog)  # no validator: a filter on findings sees none yet
        row, text = self._ingest.request_row(capture.to_record(flow), active.needs_body)
        for rule, hit in zip(active.rules, self._matcher.matches(row, active.wheres, text), strict=True):
            if hit and rule.fires():
                return rule, row
        return None, row


def _where(flow: http.HTTPFlow) -> str:
    return safe(f"{flow.request.method} {flow.request.pretty_url.split('?', 1)[0]}")
