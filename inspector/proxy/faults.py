"""The Faults addon: Xero failing on purpose, for calls that match a rule (``proxy --fault``).

A call to a Xero host is tested against the rules in order, in the request hook, before it
leaves: the first rule that matches and fires answers in Xero's place (or delays the call, or
drops it). The flow is marked, so the recorder stores it as injected and no report takes it
for Xero's answer. With no rules, the hook returns at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from mitmproxy import ctx, exceptions, http

from inspector.ingest.pipeline import Ingest
from inspector.ingest.row import FlowRow
from inspector.proxy import capture
from inspector.proxy.fault_rules import FaultError, FaultRule, answer, load_file, parse
from inspector.proxy.xero_scope import XeroScope
from inspector.store.live import LiveMatcher
from inspector.store.query import Where
from inspector.utils.first_traceback import FirstTraceback
from inspector.utils.text import safe

log = logging.getLogger(__name__)


class Faults:
    """Answers, delays or drops Xero calls that match ``inspector_fault`` rules."""

    def __init__(self, scope: XeroScope) -> None:
        self.scope = scope
        self.rules: list[FaultRule] = []
        self._wheres: list[Where] = []
        self._needs_body = False
        self._matcher: LiveMatcher | None = None
        self._ingest: Ingest | None = None
        self._first = FirstTraceback()

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
        self.rules = rules
        self._wheres = [r.where for r in rules]
        self._needs_body = LiveMatcher.reads_the_body(self._wheres)
        for rule in rules:
            log.info("fault rule: %s", safe(rule.describe()))

    def done(self) -> None:
        if self._matcher is not None:
            self._matcher.close()
            self._matcher = None

    async def request(self, flow: http.HTTPFlow) -> None:
        if not self.rules or flow.response is not None or not self.scope.hosts.matches(flow.request.pretty_host):
            return
        try:
            rule, row = self._first_firing(flow)
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

    def _first_firing(self, flow: http.HTTPFlow) -> tuple[FaultRule | None, FlowRow]:
        """The first rule that matches this call and fires on it, and the call as a flow row."""
        if self._matcher is None:
            self._matcher = LiveMatcher()
        if self._ingest is None or self._ingest.catalog is not self.scope.catalog:
            self._ingest = Ingest(self.scope.catalog)  # no validator: a filter on findings sees none yet
        row, text = self._ingest.request_row(capture.to_record(flow), self._needs_body)
        for rule, hit in zip(self.rules, self._matcher.matches(row, self._wheres, text), strict=True):
            if hit and rule.fires():
                return rule, row
        return None, row


def _where(flow: http.HTTPFlow) -> str:
    return safe(f"{flow.request.method} {flow.request.pretty_url.split('?', 1)[0]}")
