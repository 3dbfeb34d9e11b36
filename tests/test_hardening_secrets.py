"""Hardening: the tokens, keys and secrets used in the traffic appear nowhere we write — the
database file, HAR, curl and mitmproxy exports, every report format, the proxy's log — unless
the user asked to keep them (and then only where they asked)."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from inspector.samples.demo_traffic import BREAK, DemoTraffic
from inspector.samples.mock_xero import MockXero

from inspector.ingest.redact import fingerprint
from tests.helpers import ROOT, ProxyProcess, client

pytestmark = [pytest.mark.hardening, pytest.mark.e2e]


@dataclass
class Recording:
    db: Path
    log: Path
    secrets: set[str]


def record(tmp: Path, confdir: Path, keep: bool) -> Recording:
    """The demo's traffic (every API, every mistake) plus an authorization-code sign-in and a
    refresh, through the real proxy with its per-exchange log on; every secret noted as issued."""
    mock = MockXero()
    issued: set[str] = set()
    tokens = mock.app.tokens
    issue, issue_refresh = tokens.issue, tokens.issue_refresh_token

    def noting(fn):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kw):  # type: ignore[no-untyped-def]
            issued.add(token := fn(*args, **kw))
            return token

        return wrapper

    tokens.issue, tokens.issue_refresh_token = noting(issue), noting(issue_refresh)  # type: ignore[method-assign]
    mock.start()
    args = ["--redirect", mock.url, "--upstream-ca", str(mock.ca_path), "--break", BREAK]
    args += ["--keep-secrets"] if keep else []
    proxy = ProxyProcess(tmp, confdir, args).start()
    c = mock.app.config
    code = "authorization-code-4f1d9a2c7be04e55"
    try:
        with client(proxy) as http:
            url, auth = "https://identity.xero.com/connect/token", (c.client_id, c.client_secret)
            first = http.post(url, data={"grant_type": "authorization_code", "code": code}, auth=auth).json()
            http.post(url, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=auth)
        DemoTraffic(
            proxy.url, confdir / "mitmproxy-ca-cert.pem", mock, proxy.db, say=lambda _: None
        ).run()  # stops mock
    finally:
        proxy.stop()
        mock.stop()
    basic = base64.b64encode(f"{c.client_id}:{c.client_secret}".encode()).decode()
    keys = {c.client_secret, basic, c.partner_key, c.legacy_api_key, c.legacy_account_key, code, *c.customer_keys}
    return Recording(proxy.db, proxy.log, issued | keys)


@pytest.fixture(scope="module")
def redacted(tmp_path_factory: pytest.TempPathFactory, confdir: Path) -> Iterator[Recording]:
    yield record(tmp_path_factory.mktemp("secrets"), confdir, keep=False)


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([sys.executable, "-m", "inspector", *args], capture_output=True, timeout=120, cwd=ROOT)
    assert result.returncode in (0, 1), result.stderr  # reports exit 1 when they find errors
    return result


def written(rec: Recording, out: Path, *export_flags: str) -> dict[str, bytes]:
    """Everything xero-inspector writes about this recording, by name."""
    files = {p.name: p.read_bytes() for p in rec.db.parent.glob(rec.db.name + "*")}  # the file, its WAL
    files["proxy log"] = rec.log.read_bytes()
    for fmt in ("har", "curl", "mitm"):
        target = out / f"export.{fmt}"
        cli("export", "--db", str(rec.db), "--format", fmt, "-o", str(target), *export_flags)
        files[f"export {fmt}"] = target.read_bytes()
    for fmt in ("text", "markdown", "json", "junit", "html"):
        files[f"report {fmt}"] = cli("report", "--db", str(rec.db), "--format", fmt).stdout
    return files


def hits(files: dict[str, bytes], secrets: set[str]) -> list[tuple[str, str]]:
    """(where, which secret) for every secret found in what was written."""
    return [(name, s) for name, data in files.items() for s in secrets if s.encode() in data]


def test_no_secret_reaches_anything_written(redacted: Recording, tmp_path: Path) -> None:
    files = written(redacted, tmp_path)
    assert len(redacted.secrets) >= 12  # the demo's tokens (expired, wrong scope...), refreshes and keys
    assert b"redacted:sha256:" in files[redacted.db.name]  # the store did see them, as fingerprints
    assert files["proxy log"].count(b"\n") > 50  # one line per exchange was logged
    assert hits(files, redacted.secrets) == []


def test_kept_secrets_stay_in_the_store_and_leave_only_when_asked(
    tmp_path_factory: pytest.TempPathFactory, confdir: Path, tmp_path: Path
) -> None:
    kept = record(tmp_path_factory.mktemp("kept"), confdir, keep=True)
    files = written(kept, tmp_path)
    in_store = hits({k: v for k, v in files.items() if k.startswith(kept.db.name)}, kept.secrets)
    assert len({s for _, s in in_store}) >= 10  # --keep-secrets: kept as they were
    leaving = {k: v for k, v in files.items() if k.startswith(("export", "report", "proxy log"))}
    assert hits(leaving, kept.secrets) == []  # exports, reports and the log still redact
    asked = written(kept, tmp_path, "--keep-secrets")
    assert hits({k: v for k, v in asked.items() if k.startswith("export")}, kept.secrets)


# Every place a credential can sit that redaction must find by the shape of its name, not a list
# of Xero's own names: (where, how it is sent, the secret). Each secret is unique so a hit names it.
SHAPED = {
    "header X-Api-Key": "hdr-api-key-6c1f0b7e",
    "header X-Auth-Token": "hdr-auth-token-93d2aa41",
    "header X-Session-Id": "hdr-session-5e8b7c20",
    "header X-Client-Secret": "hdr-client-secret-0f4e91d3",
    "cookie": "cookie-sess-77a0c2e9",
    "query api_key": "q-api-key-2b9d4f16",
    "query password": "q-password-8e3a5d07",
    "form password": "form-password-4c7e1a92",
    "form client_secret": "form-client-secret-b15d8e3f",
    "json user_password": "json-password-d62f0a4b",
    "json access_token": "json-access-token-19c7e5d8",
    "userinfo password": "userinfo-pass-a83c6f12",
    "identity refresh_token answer": "id-refresh-5f0e2b7c",
}


def _har_with_userinfo(path: Path) -> None:
    """A HAR (a colleague's, say) whose URL carries user:password: clients put it in Basic auth
    before it reaches a proxy, but a HAR keeps what the app wrote."""
    s = SHAPED
    url = f"https://integration:{s['userinfo password']}@api.xero.com/practicemanager/3.0/job.api/list"
    entry = {
        "startedDateTime": "2026-11-30T10:00:00.000Z",
        "time": 5,
        "request": {"method": "GET", "url": url, "httpVersion": "HTTP/1.1", "headers": []},
        "response": {
            "status": 401,
            "statusText": "Unauthorized",
            "httpVersion": "HTTP/1.1",
            "headers": [],
            "content": {"mimeType": "text/plain", "text": "no"},
        },
    }
    path.write_text(
        json.dumps({"log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": [entry]}})
    )


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory, confdir: Path) -> Recording:
    """Each shaped secret sent through the real proxy to the mock (the userinfo one imported)."""
    tmp = tmp_path_factory.mktemp("shaped")
    mock = MockXero()
    mock.start()
    proxy = ProxyProcess(tmp, confdir, ["--redirect", mock.url, "--upstream-ca", str(mock.ca_path)]).start()
    s, xpm = SHAPED, "https://api.xero.com/practicemanager/3.0"
    try:
        with client(proxy) as http:
            headers = {
                "X-Api-Key": s["header X-Api-Key"],
                "X-Auth-Token": s["header X-Auth-Token"],
                "X-Session-Id": s["header X-Session-Id"],
                "X-Client-Secret": s["header X-Client-Secret"],
                "Cookie": f"sess={s['cookie']}",
            }
            http.get(
                f"{xpm}/job.api/list",
                params={"api_key": s["query api_key"], "password": s["query password"]},
                headers=headers,
            )
            http.post(
                f"{xpm}/job.api/add", data={"password": s["form password"], "client_secret": s["form client_secret"]}
            )
            http.post(
                f"{xpm}/job.api/add",
                json={"user_password": s["json user_password"], "access_token": s["json access_token"]},
            )
            # An identity answer: the refresh token Xero hands out, in a JSON body.
            mock.app.tokens.issue_refresh_token = lambda *a, **k: s["identity refresh_token answer"]  # type: ignore[method-assign]
            c = mock.app.config
            http.post(
                "https://identity.xero.com/connect/token",
                data={"grant_type": "authorization_code", "code": "c0de"},
                auth=(c.client_id, c.client_secret),
            )
    finally:
        proxy.stop()
        mock.stop()
    har = tmp / "colleague.har"
    _har_with_userinfo(har)
    cli("import", str(har), "--db", str(proxy.db))
    return Recording(proxy.db, proxy.log, set(SHAPED.values()))


def test_secrets_found_by_the_shape_of_their_name_are_stored_and_exported_redacted(
    shaped: Recording, tmp_path: Path
) -> None:
    files = written(shaped, tmp_path)
    assert set(files) >= {shaped.db.name, "export har", "export curl", "export mitm", "report junit", "proxy log"}
    found = {name: [w for w, s in SHAPED.items() if s.encode() in data] for name, data in files.items()}
    assert {k: v for k, v in found.items() if v} == {}
    # Each was seen and replaced, not lost: the store holds a fingerprint where each one was.
    with sqlite3.connect(shaped.db) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        values = [v for t in tables for row in conn.execute(f"SELECT * FROM [{t}]") for v in row]
    stored = "\n".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values)
    assert [where for where, secret in SHAPED.items() if fingerprint(secret) not in stored] == []
    assert "https://integration:redacted:sha256:" in stored
