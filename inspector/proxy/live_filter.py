"""Filters on a call still on its way, for the rules a proxy applies (faults, breakpoints).

The call becomes the row it will be stored as (``Ingest.request_row``: no redaction, no
findings, cheap) and goes through the browser's own compiled filters (store/live.py), so a
rule means exactly what the same filter means in the browser.
"""

from __future__ import annotations

from collections.abc import Sequence

from mitmproxy import http

from inspector.ingest.pipeline import Ingest
from inspector.ingest.row import FlowRow
from inspector.proxy import capture
from inspector.proxy.xero_scope import XeroScope
from inspector.store.live import LiveMatcher
from inspector.store.query import Where


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
