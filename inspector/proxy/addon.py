"""The mitmproxy addons: XeroScope (what to intercept), Recorder (what to store), Redirect.

Load them with ``mitmdump -s addons/xero_inspector.py`` or through ``xero-inspector proxy``;
both give the same recording. Hooks copy and hand over only; the writer process
(``recorder.py``) does the rest.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import ctx, exceptions, http
from mitmproxy.utils import human

from inspector.ingest.bodies import DEFAULT_MAX_BODY
from inspector.ingest.catalog import Catalog, CatalogError
from inspector.ingest.scope import HostScope
from inspector.ingest.validate import SchemaCache, SchemaLoadError, preload
from inspector.proxy import capture
from inspector.proxy.recorder import WriterConfig, WriterProcess
from inspector.proxy.spawn import exposure_warning, is_loopback
from inspector.proxy.writer import DEFAULT_QUEUE_ITEMS
from inspector.store.database import StoreError, check_path

log = logging.getLogger(__name__)


class XeroScope:
    """The Xero hosts (catalog + ``inspector_hosts``); only those are TLS-intercepted.

    Everything else is tunnelled untouched through mitmproxy's ``allow_hosts``, unless the
    user set ``allow_hosts``/``ignore_hosts`` themselves or turned ``inspector_only_xero`` off.
    """

    def __init__(self) -> None:
        self.catalog = Catalog.load()
        self.hosts = HostScope(self.catalog.hosts())
        self._loaded: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # (catalogs, hosts) behind the above
        self._allow_set: list[str] | None = None

    def load(self, loader: Any) -> None:
        loader.add_option(
            "inspector_hosts", Sequence[str], [], "Extra host regexes to treat as Xero (a company gateway)."
        )
        loader.add_option(
            "inspector_catalog",
            Sequence[str],
            [],
            "Extra endpoint catalogs (TOML) that extend or override the built-in one.",
        )
        loader.add_option(
            "inspector_only_xero",
            bool,
            True,
            "Intercept TLS only for Xero hosts and tunnel all other hosts untouched (sets allow_hosts).",
        )

    def configure(self, updated: set[str]) -> None:
        wanted = (tuple(ctx.options.inspector_catalog), tuple(ctx.options.inspector_hosts))
        # mitmproxy names every option at start-up: reload only what differs from __init__'s.
        if {"inspector_catalog", "inspector_hosts"} & updated and wanted != self._loaded:
            try:
                catalog = Catalog.load(wanted[0])
                # Compiled here only so a broken user XSD stops the proxy at start-up, named;
                # the writer process compiles its own.
                preload(catalog, SchemaCache())
                hosts = HostScope(catalog.hosts(), wanted[1])
            except (CatalogError, SchemaLoadError) as e:
                raise exceptions.OptionsError(str(e)) from e
            except re.error as e:
                raise exceptions.OptionsError(f"inspector_hosts: bad regex {e.pattern!r}: {e}") from e
            self.catalog, self.hosts, self._loaded = catalog, hosts, wanted
        # The first configure applies the scope whatever it names: addons added directly (not
        # as a script) only hear about the options that change.
        scope_keys = {"inspector_only_xero", "inspector_catalog", "inspector_hosts", "allow_hosts", "ignore_hosts"}
        if self._allow_set is None or scope_keys & updated:
            self._apply_allow_hosts()

    def _apply_allow_hosts(self) -> None:
        current = list(ctx.options.allow_hosts)
        if (current and current != self._allow_set) or ctx.options.ignore_hosts:
            return  # the user chose their own interception scope: leave it alone
        want = self.hosts.allow_hosts() if ctx.options.inspector_only_xero else []
        self._allow_set = want
        if current != want:
            ctx.options.update(allow_hosts=want)


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


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    prefix: str


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:
        raise ValueError(f"{url!r}: {e}") from e
    return Target(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


class Redirect:
    """Send intercepted Xero requests to another origin (a sandbox, the mock).

    The recording keeps the Xero URL the app asked for (Recorder snapshots it first).
    On CONNECT mitmproxy connects eagerly to the original host; with no route to
    api.xero.com the app would get a 502, so a redirect switches to a lazy connection
    strategy and stops fetching upstream certificates.
    """

    def __init__(self, scope: XeroScope) -> None:
        self.scope = scope
        self.target: Target | None = None

    def load(self, loader: Any) -> None:
        loader.add_option(
            "inspector_redirect", str, "", "Send intercepted Xero requests to this origin (https://host:port)."
        )

    def configure(self, updated: set[str]) -> None:
        if "inspector_redirect" not in updated:
            return
        url = ctx.options.inspector_redirect
        try:
            self.target = parse_target(url) if url else None
        except ValueError as e:
            raise exceptions.OptionsError(f"inspector_redirect: {e}") from e
        if self.target:
            ctx.options.update(connection_strategy="lazy", upstream_cert=False)

    def request(self, flow: http.HTTPFlow) -> None:
        t = self.target
        if t is None or not self.scope.hosts.matches(flow.request.pretty_host):
            return
        original_host, original_scheme = flow.request.pretty_host, flow.request.scheme
        flow.request.scheme = t.scheme
        flow.request.host = t.host
        flow.request.port = t.port
        if t.prefix:
            flow.request.path = t.prefix + flow.request.path
        # Standard proxy headers, so the upstream can tell which Xero host was meant.
        flow.request.headers["X-Forwarded-Host"] = original_host
        flow.request.headers["X-Forwarded-Proto"] = original_scheme
