"""Run mitmproxy in-process with our addons: what ``mitmdump -s addons/xero_inspector.py`` does,
with Xero defaults, a banner that says how to use it, and a line per recorded exchange."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inspector import __version__
from inspector.proxy.breaks import Breaks
from inspector.proxy.ca import ca_cert_path
from inspector.proxy.faults import Faults
from inspector.proxy.recorder import Recorder
from inspector.proxy.redirect import Redirect
from inspector.proxy.xero_scope import XeroScope

log = logging.getLogger(__name__)

# mitmproxy's own info lines (every client connect) drown ours; -v brings them back.
_QUIET_LOGGERS = ("mitmproxy.proxy", "mitmproxy.addons", "mitmproxy.net")
PARENT_POLL_S = 0.5


@dataclass
class ProxySettings:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    db: str = "flows.db"
    mode: str = "regular"
    redirect: str = ""
    upstream_ca: str | None = None
    confdir: str = "~/.mitmproxy"
    ssl_insecure: bool = False
    keep_secrets: bool = False
    validate: bool = True
    catalogs: Sequence[str] = ()
    hosts: Sequence[str] = ()
    flow_log: bool = True
    faults: Sequence[str] = ()
    faults_file: str = ""
    breaks: Sequence[str] = ()
    break_timeout: int = 60
    verbose: bool = False
    parent_pid: int | None = None  # stop when this process is no longer our parent
    extra_options: dict[str, Any] = field(default_factory=dict)

    def mitmproxy_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "listen_host": self.listen_host,
            "listen_port": self.listen_port,
            "mode": [self.mode],
            "confdir": self.confdir,
            "ssl_insecure": self.ssl_insecure,
            "inspector_db": self.db,
            "inspector_redirect": self.redirect,
            "inspector_keep_secrets": self.keep_secrets,
            "inspector_validate": self.validate,
            "inspector_catalog": list(self.catalogs),
            "inspector_hosts": list(self.hosts),
            "inspector_flow_log": self.flow_log,
            "inspector_fault": list(self.faults),
            "inspector_faults_file": self.faults_file,
            "inspector_break": list(self.breaks),
            "inspector_break_timeout": self.break_timeout,
        }
        if self.upstream_ca:
            opts["ssl_verify_upstream_trusted_ca"] = self.upstream_ca
        return {**opts, **self.extra_options}


# The addons name their options as mitmdump users set them; `proxy` users typed these flags.
_FLAGS = {
    "inspector_db": "--db",
    "inspector_redirect": "--redirect",
    "inspector_catalog": "--catalog",
    "inspector_hosts": "--hosts",
    "inspector_keep_secrets": "--keep-secrets",
    "inspector_fault": "--fault",
    "inspector_faults_file": "--faults",
    "inspector_break": "--break",
    "inspector_break_timeout": "--break-timeout",
    "ssl_verify_upstream_trusted_ca": "--upstream-ca",
    "confdir": "--confdir",
}
_OPTION_RE = re.compile(r"^(\w{1,40}):")


def flag_names(message: str) -> str:
    """'inspector_db: …' -> '--db: …': an error names what the user typed."""
    return _OPTION_RE.sub(lambda m: f"{_FLAGS.get(m.group(1), m.group(1))}:", message, count=1)


class Banner:
    """Says where the proxy listens and how to point an app at it, once it really listens."""

    def __init__(self, settings: ProxySettings, scope: XeroScope) -> None:
        self.s = settings
        self.scope = scope

    def running(self) -> None:
        s = self.s
        url = f"http://{s.listen_host}:{s.listen_port}"
        lines = [
            f"xero-inspector {__version__}",
            f"  proxy     {url}  (mode {s.mode})",
            f"  database  {s.db}",
            f"  CA        {ca_cert_path(s.confdir)}   (`xero-inspector ca` says how to trust it)",
            f"  Xero      {', '.join(sorted(self.scope.hosts.hosts))}"
            + (f" + {', '.join(s.hosts)}" if s.hosts else ""),
        ]
        if s.redirect:
            lines.append(f"  redirect  every Xero request goes to {s.redirect}")
        if s.faults or s.faults_file:
            lines.append("  faults    injected as the rules above say (~injected finds them)")
        if s.breaks:
            held = f"matching calls wait up to {s.break_timeout} s for the browser"
            lines.append(f"  breaks    {held} (~paused finds them)")
        if s.keep_secrets:
            lines.append("  secrets   KEPT as they are (--keep-secrets)")
        if s.mode == "regular":
            lines.append(f"  use       export HTTPS_PROXY={url} HTTP_PROXY={url}")
        lines.append("Ctrl+C stops and writes everything queued.")
        print("\n".join(lines), flush=True)


def addons(scope: XeroScope) -> list[Any]:
    """Our addons in the order they must run (``mitmdump -s addons/xero_inspector.py`` too)."""
    return [scope, Faults(scope), Breaks(scope), Recorder(scope), Redirect(scope)]


async def serve(settings: ProxySettings) -> int:
    # Imported here: mitmproxy's tools are heavy and only this command needs them.
    from mitmproxy import exceptions, options
    from mitmproxy.tools.dump import DumpMaster

    logging.getLogger().setLevel(logging.DEBUG)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if settings.verbose else logging.WARNING)

    opts = options.Options()
    master = DumpMaster(opts, with_termlog=True, with_dumper=False)
    scope = XeroScope()
    # Faults, then Breaks (a faked answer is not held), then Recorder: mitmproxy ends addons in this
    # order, so their pollers have let go of the file before the recorder closes it (and, closing
    # last, folds the WAL back in); and a held call's edits are in place before it is recorded.
    master.addons.add(*addons(scope), Banner(settings, scope))
    try:
        opts.update(**settings.mitmproxy_options())
    except exceptions.OptionsError as e:
        print(f"xero-inspector: error: {flag_names(str(e))}", file=sys.stderr)
        return 2

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, or not the main thread
            loop.add_signal_handler(sig, master.shutdown)
    if hasattr(signal, "SIGPIPE"):
        # A client that hangs up mid-write must not kill the proxy (ValueError: not the main thread).
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    # Kept referenced until the proxy ends: a task nobody holds can be collected mid-flight.
    watchdog = asyncio.create_task(_watch_parent(settings.parent_pid, master)) if settings.parent_pid else None
    try:
        await master.run()
    finally:
        if watchdog is not None:
            watchdog.cancel()
    return 0


async def _watch_parent(parent_pid: int, master: Any) -> None:
    """A proxy started by `demo` or `up` ends with them, however they end (SIGKILL included):
    once its parent is gone it is re-parented, and it stops the way Ctrl+C stops it."""
    while os.getppid() == parent_pid:
        await asyncio.sleep(PARENT_POLL_S)
    log.warning("the process that started this proxy (pid %d) is gone; stopping", parent_pid)
    master.shutdown()


def run(settings: ProxySettings) -> int:
    return asyncio.run(serve(settings))
