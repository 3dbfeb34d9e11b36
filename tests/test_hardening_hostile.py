"""Hardening: hostile XML through the real proxy. Each body gets its answer, becomes a finding,
reads nothing from the local file system, and the proxy and its writer stay up with bounded memory."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from inspector.samples.mock_xero import TENANTS, MockXero

from tests.helpers import ProxyProcess, client, rows, wait_for_rows

pytestmark = [pytest.mark.hardening, pytest.mark.e2e]

XPM = "https://api.xero.com/practicemanager/3.0/job.api/add"
SECRET = "TOP-SECRET-LOCAL-FILE-7d1e"
# What the proxy and its writer process may reach at their peak, each, on these bodies: the
# largest is 100 MB, held by mitmproxy and copied once to hand over; the writer keeps 16 MB of it.
PEAK_BOUND_MIB = 700


def hostile(local: Path) -> dict[str, bytes]:
    uri = local.as_uri()
    return {
        "xxe-file": f'<?xml version="1.0"?><!DOCTYPE Job [<!ENTITY x SYSTEM "{uri}">]><Job><Name>&x;</Name></Job>'.encode(),
        "xxe-parameter": (
            f'<?xml version="1.0"?><!DOCTYPE Job [<!ENTITY % p SYSTEM "{uri}"> %p;]><Job><Name>a</Name></Job>'
        ).encode(),
        "billion-laughs": (
            '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol">'
            + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
            + "]><Job><Name>&j;</Name></Job>"
        ).encode(),
        "quadratic-blowup": (
            '<?xml version="1.0"?><!DOCTYPE Job [<!ENTITY a "'
            + "x" * 50_000
            + '">]><Job><Name>'
            + "&a;" * 50_000
            + "</Name></Job>"
        ).encode(),
        "deep-nesting": b"<Job>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</Job>",
        "invalid-utf8": b'<?xml version="1.0" encoding="UTF-8"?><Job><Name>\xff\xfe\xc3\x28</Name></Job>',
        "wrong-encoding": '<?xml version="1.0" encoding="UTF-16"?><Job><Name>Caf\u00e9</Name></Job>'.encode(),
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, confdir: Path) -> Iterator[tuple[ProxyProcess, str]]:
    tmp = tmp_path_factory.mktemp("hostile")
    with MockXero() as mock:
        args = ["--redirect", mock.url, "--upstream-ca", str(mock.ca_path), "--quiet"]
        proxy = ProxyProcess(tmp, confdir, args).start()
        try:
            yield proxy, mock.app.tokens.issue(["practicemanager"])
        finally:
            proxy.stop()


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_hostile_bodies_are_answered_found_and_read_nothing(setup: tuple[ProxyProcess, str], tmp_path: Path) -> None:
    proxy, token = setup
    local = tmp_path / "local-secret.txt"
    local.write_text(SECRET)
    bodies = hostile(local)
    bodies["gzip-bomb"] = gzip.compress(b"<Job>" + b" " * 200_000_000 + b"</Job>", compresslevel=9)
    bodies["100-mb"] = b"<Job><Name>" + b"x" * 100_000_000 + b"</Name></Job>"
    with client(proxy) as http:
        for name, body in bodies.items():
            headers = {
                "Authorization": f"Bearer {token}",
                "xero-tenant-id": TENANTS[0].id,
                "Content-Type": "text/xml",
                "X-Case": name,
            }
            if name == "gzip-bomb":
                headers["Content-Encoding"] = "gzip"
            resp = http.post(XPM, content=body, headers=headers)
            assert resp.status_code == 200 and b"<Status>ERROR</Status>" in resp.content, name  # Xero's answer
    sql = "select id, request_headers from flows where request_headers like '%X-Case%'"
    found = {}
    for row in wait_for_rows(proxy.db, sql, len(bodies)):
        case = next(v for k, v in json.loads(row["request_headers"]) if k == "X-Case")
        found[case] = {r["rule"] for r in rows(proxy.db, "select rule from findings where flow_id = ?", [row["id"]])}
    expected = dict.fromkeys(bodies, "not-well-formed") | {
        "xxe-file": "xml-dtd",  # declared, never followed
        "gzip-bomb": "not-validated",  # decoded up to the limit, cut there, and said so
        "100-mb": "not-validated",
    }
    assert {case: expected[case] in rules for case, rules in found.items()} == dict.fromkeys(bodies, True), found
    data = proxy.db.read_bytes() + Path(f"{proxy.db}-wal").read_bytes()
    assert SECRET.encode() not in data
    assert proxy.proc is not None and proxy.proc.poll() is None  # still up
    (writer,) = (int(c) for c in Path(f"/proc/{proxy.proc.pid}/task/{proxy.proc.pid}/children").read_text().split())
    peaks = {"proxy": peak_mib(proxy.proc.pid), "writer": peak_mib(writer)}
    print("peak resident memory MiB", {k: round(v) for k, v in peaks.items()})
    assert all(v < PEAK_BOUND_MIB for v in peaks.values()), peaks
