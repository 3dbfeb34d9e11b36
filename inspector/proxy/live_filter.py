"""Filters on a call still on its way, for the rules a proxy applies (faults, breakpoints).

The call becomes the row it will be stored as (``Ingest.request_row``: no redaction, no
findings, cheap) and goes through the browser's own compiled filters (store/live.py), so a
rule means exactly what the same filter means in the browser.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from mitmproxy import http

from inspector.ingest.pipeline import Ingest
from inspector.ingest.row import FlowRow
from inspector.proxy import capture
from inspector.proxy.xero_scope import XeroScope
from inspector.store.live import LiveMatcher
from inspector.store.query import Where
from inspector.utils.text import safe

log = logging.getLogger(__name__)


class Rule(Protocol):
    @property
    def where(self) -> Where: ...

    def describe(self) -> str: ...


R = TypeVar("R", bound=Rule)


@dataclass(frozen=True)
class RuleSet(Generic[R]):
    """Rules in force, swapped whole (a poller thread writes, the event loop reads): the options'
    first, then the browser's, with their compiled filters and whether any reads the body."""

    options: list[R] = field(default_factory=list)
    browser: list[R] = field(default_factory=list)
    browser_texts: list[str] = field(default_factory=list)
    rules: list[R] = field(default_factory=list)
    wheres: list[Where] = field(default_factory=list)
    needs_body: bool = False

    @classmethod
    def of(cls, options: list[R], browser: list[R], texts: list[str]) -> RuleSet[R]:
        rules = [*options, *browser]
        wheres = [r.where for r in rules]
        return cls(options, browser, texts, rules, wheres, LiveMatcher.reads_the_body(wheres))

    def with_options(self, options: list[R]) -> RuleSet[R]:
        return RuleSet.of(options, self.browser, self.browser_texts)

    def with_browser(self, texts: list[str], parse: Callable[[str], R], what: str) -> RuleSet[R] | None:
        """The browser's rule texts parsed (one that does not is logged and skipped), or None when
        they are the ones already in force."""
        if texts == self.browser_texts:
            return None
        rules = []
        for text in texts:
            try:
                rules.append(parse(text))
            except ValueError as e:  # FaultError, BreakError: one line that names the rule
                log.error("%s from the browser skipped: %s", what, e)
        log.info("%s from the browser: %s", what, safe("; ".join(r.describe() for r in rules)) or "none")
        return RuleSet.of(self.options, rules, texts)


class LiveFilter:
    """One per addon, used from the proxy's event loop only."""

    def __init__(self, scope: XeroScope) -> None:
        self.scope = scope
        self._matcher: LiveMatcher | None = None
        self._ingest: Ingest | None = None

    def matches(self, flow: http.HTTPFlow, wheres: Sequence[Where], needs_body: bool) -> tuple[list[bool], FlowRow]:
        """Which of ``wheres`` this call matches, and the call as a flow row."""
        if self._matcher is None:
            self._matcher = LiveMatcher()
        if self._ingest is None or self._ingest.catalog is not self.scope.catalog:
            self._ingest = Ingest(self.scope.catalog)  # no validator: a filter on findings sees none yet
        row, text = self._ingest.request_row(capture.to_record(flow), needs_body)
        return self._matcher.matches(row, wheres, text), row

    def close(self) -> None:
        if self._matcher is not None:
            self._matcher.close()
            self._matcher = None
