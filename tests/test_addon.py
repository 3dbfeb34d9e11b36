"""The addons driven by mitmproxy's own test harness (taddons, tflow), as mitmproxy tests its addons."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mitmproxy import exceptions, http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons, tflow

from inspector.proxy.breaks import Breaks
from inspector.proxy.faults import Faults
from inspector.proxy.recorder import Recorder
from inspector.proxy.redirect import Redirect
from inspector.proxy.xero_scope import XeroScope
from tests.helpers import ROOT, rows

XPM_LIST = "https://api.xero.com/practicemanager/3.0/job.api/list?from=20240101&to=20241231"


def flow(
    url: str = XPM_LIST,
    status: int | None = 200,
    body: bytes = b"<Response><Status>OK</Status></Response>",
    error: str | None = None,
    headers: dict[str, str] | None = None,
) -> http.HTTPFlow:
    req = http.Request.make("GET", url, b"", {"Authorization": "Bearer abc.def.ghi", **(headers or {})})
    req.timestamp_start, req.timestamp_end = time.time(), time.time()
    resp = None
    if status is not None:
        resp = http.Response.make(status, body, {"Content-Type": "text/xml"})
        resp.timestamp_start = resp.timestamp_end = time.time()
    f = tflow.tflow(req=req, resp=resp or False)
    if error:
        from mitmproxy.flow import Error

        f.error = Error(error)
    return f


@dataclass
class Rig:
    tctx: taddons.context
    scope: XeroScope
    recorder: Recorder
    redirect: Redirect
    db: Path

    def through(self, f: http.HTTPFlow) -> None:
        """The hooks in the order mitmproxy calls them."""
        self.recorder.requestheaders(f)
        self.redirect.request(f)
        if f.error:
            self.recorder.error(f)
        else:
            self.recorder.response(f)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    scope = XeroScope()
    recorder, redirect = Recorder(scope), Redirect(scope)
    # Proxyserver declares connection_strategy, which a redirect sets.
    with taddons.context(Proxyserver(), scope, recorder, redirect) as tctx:
        tctx.configure(recorder, inspector_db=str(tmp_path / "flows.db"))
        recorder.running()
        yield Rig(tctx, scope, recorder, redirect, tmp_path / "flows.db")
        recorder.done()


def test_a_xero_flow_is_recorded_and_a_foreign_one_is_not(rig: Rig) -> None:
    rig.through(flow())
    rig.through(flow("https://example.com/practicemanager/3.0/job.api/list"))
    rig.recorder.done()
    (row,) = rows(rig.db, "select url, family, operation, outcome from flows")
    assert (row["url"], row["family"], row["operation"], row["outcome"]) == (XPM_LIST, "xpm-3.0", "list", "ok")


def test_error_hook_records_a_transport_error_once(rig: Rig) -> None:
    f = flow(status=None, error="Connection refused")
    rig.through(f)
    rig.recorder.error(f)  # mitmproxy may report again: still one row
    rig.recorder.done()
    (row,) = rows(rig.db, "select outcome, error, status from flows")
    assert (row["outcome"], row["error"], row["status"]) == ("transport-error", "Connection refused", None)


def test_redirect_keeps_the_url_the_app_asked_for(rig: Rig) -> None:
    rig.tctx.configure(rig.redirect, inspector_redirect="https://127.0.0.1:8443/prefix")
    assert rig.tctx.options.connection_strategy == "lazy" and rig.tctx.options.upstream_cert is False
    f = flow()
    rig.through(f)
    assert (f.request.scheme, f.request.host, f.request.port) == ("https", "127.0.0.1", 8443)
    assert f.request.path.startswith("/prefix/practicemanager/3.0/job.api/list")
    assert f.request.headers["X-Forwarded-Host"] == "api.xero.com"
    rig.recorder.done()
    (row,) = rows(rig.db, "select url, request_headers from flows")
    assert row["url"] == XPM_LIST and "X-Forwarded-Host" not in row["request_headers"]


def test_redirect_leaves_other_hosts_alone(rig: Rig) -> None:
    rig.tctx.configure(rig.redirect, inspector_redirect="https://127.0.0.1:8443")
    f = flow("https://example.com/x")
    rig.redirect.request(f)
    assert f.request.host == "example.com"


def test_scope_sets_allow_hosts_and_respects_the_users_own(rig: Rig) -> None:
    allow = list(rig.tctx.options.allow_hosts)
    assert len(allow) == 1 and r"api\.xero\.com" in allow[0]
    rig.tctx.configure(rig.scope, inspector_hosts=[r"gw\.corp$"])
    assert rig.tctx.options.allow_hosts[-1] == r"gw\.corp(?::\d+)?$"
    assert rig.scope.hosts.matches("GW.corp") and not rig.scope.hosts.matches("gw.corporate")
    rig.tctx.configure(rig.scope, inspector_only_xero=False)
    assert list(rig.tctx.options.allow_hosts) == []
    rig.tctx.options.update(allow_hosts=["mine"])
    rig.tctx.configure(rig.scope, inspector_only_xero=True)
    assert list(rig.tctx.options.allow_hosts) == ["mine"]  # the user's choice wins


def test_bad_options_are_one_line_errors(rig: Rig, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"not a database" * 100)
    cases = [
        (rig.recorder, {"inspector_db": str(foreign)}, "inspector_db: "),
        (rig.recorder, {"inspector_max_body": "lots"}, "inspector_max_body"),
        (rig.scope, {"inspector_hosts": ["("]}, "bad regex"),
        (rig.scope, {"inspector_catalog": [str(tmp_path / "none.toml")]}, "cannot read catalog"),
        (rig.redirect, {"inspector_redirect": "ftp://x"}, "not an http"),
    ]
    for addon, opts, message in cases:
        with pytest.raises(exceptions.OptionsError, match=message):
            rig.tctx.configure(addon, **opts)


def test_recording_failure_never_reaches_the_traffic(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("inspector.proxy.capture.to_record", lambda f: 1 / 0)
    f = flow()
    rig.through(f)  # no exception escapes into mitmproxy
    assert rig.recorder.writer is not None and rig.recorder.writer.counters.errors == 1


def test_the_script_loads_as_mitmproxy_loads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with taddons.context() as tctx:
        module = tctx.script(str(ROOT / "addons" / "xero_inspector.py"))
        tctx.configure(module.addons[3], inspector_db="elsewhere.db")
    assert list(tmp_path.iterdir()) == []  # loaded and configured, never run: no ./flows.db, nothing
    kinds = [type(a) for a in module.addons]
    assert kinds == [XeroScope, Faults, Breaks, Recorder, Redirect]
    assert all(a.scope is module.addons[0] for a in module.addons[1:])
