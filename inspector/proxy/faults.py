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
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions, http

from inspector.ingest.row import FlowRow
from inspector.proxy import capture
from inspector.proxy.fault_rules import FaultError, FaultRule, answer, load_file, parse
from inspector.proxy.live_filter import LiveFilter, RuleSet
from inspector.proxy.poller import FilePoller
from inspector.proxy.xero_scope import XeroScope
from inspector.store import controls
from inspector.utils.first_traceback import FirstTraceback
from inspector.utils.text import safe

log = logging.getLogger(__name__)


class Faults:
    """Answers, delays or drops Xero calls that match ``inspector_fault`` rules."""

    def __init__(self, scope: XeroScope) -> None:
        self.scope = scope
        self.active: RuleSet[FaultRule] = RuleSet()
        self._live = LiveFilter(scope)
        self._first = FirstTraceback()
        self._poller = FilePoller("faults-poller", self._read, lambda: controls.POLL_S)

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
        for rule in rules:
            log.info("fault rule: %s", safe(rule.describe()))
        self.active = self.active.with_options(rules)

    def running(self) -> None:
        db = getattr(ctx.options, "inspector_db", "")
        if db:
            self._poller.start(Path(db))

    def done(self) -> None:
        self._poller.stop()
        self._live.close()

    def _read(self, conn: sqlite3.Connection) -> None:
        self.take(controls.faults(conn))

    def take(self, texts: list[str]) -> None:
        """The browser's rules, when they changed."""
        if (changed := self.active.with_browser(texts, parse, "fault rules")) is not None:
            self.active = changed

    async def request(self, flow: http.HTTPFlow) -> None:
        active = self.active
        if not active.rules or flow.response is not None or not self.scope.hosts.matches(flow.request.pretty_host):
            return
        try:
            rule, row = self._first_firing(flow, active)
        except Exception as e:  # a rule must never break the traffic: the call goes on untouched
            log.error("fault rules not applied to %s: %s", capture.where(flow), e, exc_info=self._first(e))
            return
        if rule is None:
            return
        log.info("fault injected: %s on %s", rule.kind, capture.where(flow))
        flow.metadata[capture.INJECTED] = rule.kind
        if rule.kind == "delay":
            await asyncio.sleep(rule.delay_ms / 1000)
        elif rule.kind == "drop":
            flow.kill()
        else:
            made = answer(rule, row)
            headers = http.Headers([(k.encode(), v.encode()) for k, v in made.headers])
            flow.response = http.Response.make(made.status, made.body, headers)

    def _first_firing(self, flow: http.HTTPFlow, active: RuleSet[FaultRule]) -> tuple[FaultRule | None, FlowRow]:
        """The first rule that matches this call and fires on it, and the call as a flow row."""
        hits, row = self._live.matches(flow, active.wheres, active.needs_body)
        for rule, hit in zip(active.rules, hits, strict=True):
            if hit and rule.fires():
                return rule, row
        return None, row
