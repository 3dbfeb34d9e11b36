"""The Recorder addon: every exchange with a Xero host, copied in the hooks and handed over.

Hooks copy and hand over only (``capture.py``, then ``handover.py``); the writer process does
the rest. Load it with ``mitmdump -s addons/xero_inspector.py`` or through
``xero-inspector proxy``; both give the same recording.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from mitmproxy import ctx, exceptions, http
from mitmproxy.utils import human

from inspector.ingest.decoding import DEFAULT_MAX_BODY
from inspector.proxy import capture
from inspector.proxy.handover import WriterProcess
from inspector.proxy.spawn import exposure_warning, is_loopback
from inspector.proxy.wire import WriterConfig
from inspector.proxy.writer import DEFAULT_QUEUE_ITEMS
from inspector.proxy.xero_scope import XeroScope
from inspector.store.database import StoreError, check_path

log = logging.getLogger(__name__)


class Recorder:
    """Records every exchange with a Xero host into the SQLite file ``inspector_db``."""

    def __init__(self, scope: XeroScope) -> None:
        self.scope = scope
        self.writer: WriterProcess | None = None
        self._running = False
        self._max_body = DEFAULT_MAX_BODY

    def load(self, loader: Any) -> None:
        loader.add_option("inspector_db", str, "flows.db", "SQLite file the recorder writes to.")
        loader.add_option(
            "inspector_keep_secrets", bool, False, "Store tokens, keys and secrets as they are (default: fingerprints)."
        )
        loader.add_option(
            "inspector_queue_size",
            int,
            DEFAULT_QUEUE_ITEMS,
            "Records waiting for the writer before new ones are dropped.",
        )
        loader.add_option("inspector_max_body", str, "16m", "Stored bodies are cut at this size (k/m/g suffixes).")
        loader.add_option("inspector_flow_log", bool, False, "Log one line per recorded exchange.")
        loader.add_option(
            "inspector_validate", bool, True, "Check XML bodies against their endpoint's schema as they are recorded."
        )

    def configure(self, updated: set[str]) -> None:
        if "inspector_max_body" in updated:
            try:
                size = human.parse_size(ctx.options.inspector_max_body)
            except ValueError as e:
                raise exceptions.OptionsError(f"inspector_max_body: {e}") from e
            self._max_body = size or DEFAULT_MAX_BODY
        if "inspector_db" in updated:
            try:  # refused now, but created only once the proxy runs (a failed start leaves nothing)
                check_path(ctx.options.inspector_db)
            except StoreError as e:
                raise exceptions.OptionsError(f"inspector_db: {e}") from e
        restart = {
            "inspector_db",
            "inspector_keep_secrets",
            "inspector_queue_size",
            "inspector_max_body",
            "inspector_validate",
            "inspector_catalog",
            "inspector_flow_log",
        }
        if self._running and restart & updated:
            self._stop_writer()
            self._start_writer()

    def running(self) -> None:
        self._running = True
        self._start_writer()
        # mitmdump's own default is every interface; `xero-inspector proxy` refuses that unless asked.
        if not is_loopback(ctx.options.listen_host):
            log.warning("warning: %s", exposure_warning(ctx.options.listen_host))

    def done(self) -> None:
        self._running = False
        self._stop_writer()

    def _start_writer(self) -> None:
        opts = ctx.options
        info = {
            "listen": f"{opts.listen_host or '*'}:{opts.listen_port}",
            "mode": ",".join(opts.mode),
            "redirect": getattr(opts, "inspector_redirect", "") or None,
            "pid": os.getpid(),  # the proxy's: the browser shows the recorder live while it runs
        }
        config = WriterConfig(
            db=str(opts.inspector_db),
            catalogs=list(opts.inspector_catalog),
            keep_secrets=opts.inspector_keep_secrets,
            max_body=self._max_body,
            validate=opts.inspector_validate,
            queue_items=opts.inspector_queue_size,
            flow_log=opts.inspector_flow_log,
            info=info,
        )
        self.writer = WriterProcess(config)
        self.writer.start()
        log.info("recording Xero traffic into %s", opts.inspector_db)

    def _stop_writer(self) -> None:
        if self.writer is not None:
            self.writer.stop()
            c = self.writer.counters
            log.info("recorder stopped: %d recorded, %d dropped, %d errors", c.recorded, c.dropped, c.errors)
            self.writer = None

    # --- hooks: copy and enqueue, nothing more -------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self.scope.hosts.matches(flow.request.pretty_host):
            capture.snapshot_request(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def _record(self, flow: http.HTTPFlow) -> None:
        writer = self.writer
        if writer is None or capture.ASKED not in flow.metadata or flow.metadata.get(capture.RECORDED):
            return
        flow.metadata[capture.RECORDED] = True
        try:
            writer.submit(capture.to_record(flow))
        except Exception:  # recording must never break the traffic
            log.exception("recorder could not capture %s", flow.request.pretty_url.split("?")[0])
            writer.count_error()
