"""`xero-inspector mcp` driven by the MCP SDK's own client, over stdio (and once over streamable
HTTP), against a demo recording: each tool's answer is checked against what the CLI prints for
the same question, and no secret of the demo's traffic is in any answer."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from inspector.samples.mock_xero import TENANTS, MockConfig, MockXero
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from inspector.proxy.spawn import free_port
from tests.helpers import ROOT, WAIT, ProxyProcess, client, copy_db, rows, wait_for_rows
from tests.test_capture_e2e import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
TOOLS = {"list_flows", "get_flow", "findings_summary", "validate", "endpoints", "diff", "replay"}
JOB_ADD = "POST https://api.xero.com/practicemanager/3.0/job.api/add"
XPM = "https://api.xero.com/practicemanager/3.0"
TYPO_JOB = (
    "<Job>\n  <Nmae>Year-end</Nmae>\n  <Description>Accounts</Description>\n  <ClientID>24097642</ClientID>\n"
    "  <StartDate>20260101</StartDate>\n  <DueDate>20260131</DueDate>\n</Job>\n"
)
JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, confdir: Path) -> Path:
    """The demo's recording, made as a user makes it."""
    tmp = tmp_path_factory.mktemp("mcp-demo")
    done = cli("demo", "--headless", "--db", str(tmp / "xero-demo.db"), "--confdir", str(confdir))
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp / "xero-demo.db"


@dataclass
class Kept:
    db: Path
    mock: MockXero
    token: str
    ids: dict[str, int]


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory, confdir: Path, upstream: MockXero) -> Kept:
    """Three calls through the real proxy recorded with --keep-secrets: the store holds the token."""
    tmp = tmp_path_factory.mktemp("mcp-kept")
    args = ["--redirect", upstream.url, "--upstream-ca", str(upstream.ca_path), "--keep-secrets"]
    proxy = ProxyProcess(tmp, confdir, args).start()
    xpm = {"xero-tenant-id": TENANTS[0].id, "Content-Type": "text/xml; charset=utf-8"}
    try:
        with client(proxy) as http:
            token = sign_in(http, upstream)
            auth = {**xpm, "Authorization": f"Bearer {token}"}
            http.get(f"{XPM}/client.api/list", headers={**auth, "X-Test": "clients"})
            http.post(f"{XPM}/job.api/add", headers={**auth, "X-Test": "typo"}, content=TYPO_JOB)
        wait_for_rows(proxy.db, "select id from flows where request_headers like '%X-Test%'", 2)
    finally:
        proxy.stop()
    ids = {
        name: rows(proxy.db, "select id from flows where request_headers like ?", [f'%"X-Test", "{name}"%'])[0]["id"]
        for name in ("clients", "typo")
    }
    return Kept(proxy.db, upstream, token, ids)


@asynccontextmanager
async def session(db: Path, *args: str, env: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    """The server as an agent starts it: a process speaking MCP on its stdin and stdout."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "inspector", "mcp", "--db", str(db), *args],
        env={k: v for k, v in os.environ.items() if k != "XERO_ACCESS_TOKEN"} | (env or {}),
        cwd=str(ROOT),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        yield s


@dataclass
class Answer:
    error: bool
    text: str

    @property
    def json(self) -> Any:
        assert not self.error, self.text
        return json.loads(self.text)


class Recorder:
    """Every answer an agent got, so the secrets test can read them all."""

    def __init__(self, s: ClientSession) -> None:
        self.s = s
        self.texts: list[str] = []

    async def __call__(self, tool: str, **args: Any) -> Answer:
        result = await self.s.call_tool(tool, args)
        text = "".join(c.text for c in result.content if c.type == "text")
        self.texts.append(text)
        return Answer(bool(result.isError), text)


def table(out: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines() if line.strip()]


async def test_every_tool_answers_as_the_cli_does_and_no_secret_leaves(demo: Path, tmp_path: Path) -> None:
    db = copy_db(demo, tmp_path / "demo.db")
    async with session(db) as s:
        listed = await s.list_tools()
        assert {t.name for t in listed.tools} == TOOLS
        assert all(t.description and len(t.description) < 600 for t in listed.tools)
        call = Recorder(s)

        # list_flows: the accounting calls, newest first, as many as the report counts
        accounting = (await call("list_flows", filter="~api accounting", limit=200)).json
        expected = [r["id"] for r in rows(db, "select id from flows where family like 'accounting-%' order by id desc")]
        assert [f["id"] for f in accounting["flows"]] == expected and accounting["matching"] == len(expected) > 0
        assert {f["api"] for f in accounting["flows"]} == {"accounting-2.0"}
        report = json.loads(cli("report", "--db", str(db), "--format", "json", "--filter", "~api accounting").stdout)
        assert report["flows"] == len(expected)
        # paging back: no flow twice, none missed
        seen, before = [], None
        while True:
            page = (await call("list_flows", limit=25, **({"before_id": before} if before else {}))).json
            seen += [f["id"] for f in page["flows"]]
            if (before := page["next_before_id"]) is None:
                break
        assert seen == [r["id"] for r in rows(db, "select id from flows order by id desc")]

        # get_flow: the held job, with what the HAR export (the CLI) says of it
        (held,) = rows(db, "select id from flows where paused is not null")
        flow = (await call("get_flow", id=held["id"])).json
        har = json.loads(cli("export", str(held["id"]), "--db", str(db), "--format", "har").stdout)
        (entry,) = har["log"]["entries"]
        assert flow["request"]["headers"] == [[h["name"], h["value"]] for h in entry["request"]["headers"]]
        assert flow["request"]["body"]["text"] == entry["request"]["postData"]["text"]
        assert "<Nmae>" in flow["request"]["original_body"]["text"]  # as it was before the edit
        assert flow["organisation"]["name"] == "Demo Practice Ltd" and flow["rate_limits"]["minute_remaining"] >= 0
        assert flow["paused"].startswith("request edited (body)")
        # a call with findings: line, column, xpath and hint as the report has them
        worst = report_example(db, "~api xpm")
        found = (await call("get_flow", id=worst["flow_id"], bodies=False)).json
        assert found["request"]["body"] is None
        match = [f for f in found["findings"] if f["message"] == worst["message"]]
        assert match and (match[0]["line"], match[0]["column"], match[0]["xpath"]) == (
            worst["line"],
            worst["column"],
            worst["xpath"],
        )
        # a Xero error inside an answer, and paging a body
        (api_error,) = rows(db, "select id, api_error from flows where outcome = 'api-error' order by id limit 1")
        failed = (await call("get_flow", id=api_error["id"], body_limit=40)).json
        assert failed["xero_error"]["message"] == api_error["api_error"]
        body = failed["response"]["body"]
        assert len(body["text"]) == 40 and body["next_offset"] == 40
        rest = (await call("get_flow", id=api_error["id"], body_offset=40)).json["response"]["body"]
        assert (
            body["text"] + rest["text"]
            == rows(db, "select text from bodies where flow_id = ? and side = 'response'", [api_error["id"]])[0]["text"]
        )

        # findings_summary: the report's JSON
        summary = (await call("findings_summary", filter="~api xpm")).json
        printed = json.loads(cli("report", "--db", str(db), "--format", "json", "--filter", "~api xpm").stdout)
        assert {k: v for k, v in summary.items() if k not in ("generated_at", "summary")} == {
            k: v for k, v in printed.items() if k != "generated_at"
        }
        assert summary["groups"] and summary["summary"].startswith(f"{printed['flows']} flows matching '~api xpm'")

        # validate: the lines `validate` prints
        checked = (await call("validate", body=TYPO_JOB, endpoint=JOB_ADD)).json
        printed_lines = cli("validate", "-", "--endpoint", JOB_ADD, stdin=TYPO_JOB)
        assert printed_lines.returncode == 1
        assert "\n".join(checked["lines"]).replace("body:", "<stdin>:") == printed_lines.stdout.strip()
        assert not checked["valid"] and {f["rule"] for f in checked["findings"]} >= {"unknown-element"}
        fixed = TYPO_JOB.replace("Nmae", "Name")
        assert (await call("validate", body=fixed, endpoint=JOB_ADD)).json["valid"]

        # endpoints: the table `endpoints` prints
        catalog = (await call("endpoints", family="xpm-3.0")).json
        printed_rows = table(cli("endpoints", "--family", "xpm-3.0").stdout)[1:]
        assert [
            [e["family"], e["method"], e["path"], e["request_schema"], e["response_schema"]]
            for e in catalog["endpoints"]
        ] == printed_rows

        # diff: a v1 call against its v3 replay, as `diff --unified` prints it
        (pair,) = rows(db, "select replay_of a, id b from flows where replay_of is not null order by id limit 1")
        d = (await call("diff", a=pair["a"], b=pair["b"])).json
        printed_diff = cli("diff", str(pair["a"]), str(pair["b"]), "--db", str(db), "--unified")
        assert d["unified"] == printed_diff.stdout.rstrip("\n") and d["same"] is (printed_diff.returncode == 0)
        assert (await call("diff", a=pair["a"])).json["b"] == max(
            r["id"] for r in rows(db, "select id from flows where replay_of = ?", [pair["a"]])
        )

        # mistakes: one line each, and the server goes on
        bad = await call("list_flows", filter="~c 400 & (~bogus")
        assert bad.error and "unknown filter ~bogus" in bad.text and "Traceback" not in bad.text
        for tool, args, says in (
            ("get_flow", {"id": 999999}, "no flow 999999"),
            ("diff", {"a": 1, "b": 999999}, "no flow 999999"),
            ("findings_summary", {"filter": "~m"}, "bad filter"),
            ("validate", {"body": "<Job/>", "endpoint": "job.api/add"}, 'endpoint must be "METHOD URL"'),
            ("endpoints", {"family": "xpm-9"}, "no endpoints for family 'xpm-9'"),
            ("replay", {"id": 999999}, "no flow 999999"),
        ):
            answer = await call(tool, **args)
            assert answer.error and says in answer.text and len(answer.text.splitlines()) == 1, (tool, answer.text)
        assert (await call("list_flows", limit=1)).json["flows"]

        # secrets: the demo signed in with a client secret, sent Bearer tokens and v1 keys
        config = MockConfig()
        secrets = [config.client_secret, config.partner_key, *config.customer_keys]
        everything = "\n".join(call.texts)
        assert "sha256:" in everything  # the fingerprints are there, in their place
        assert not JWT.search(everything) and not [s for s in secrets if s in everything]


def report_example(db: Path, expr: str) -> dict[str, Any]:
    report = json.loads(cli("report", "--db", str(db), "--format", "json", "--filter", expr).stdout)
    return next(e for g in report["groups"] for e in g["examples"] if e["line"])


async def test_replay_refuses_writes_unless_allowed_and_confirmed(kept: Kept, tmp_path: Path) -> None:
    db = copy_db(kept.db, tmp_path / "flows.db")
    before = rows(db, "select count(*) n from flows")[0]["n"]
    target = ["--to", kept.mock.url, "--ca", str(kept.mock.ca_path)]
    async with session(db, *target, env={"XERO_ACCESS_TOKEN": kept.token}) as s:
        call = Recorder(s)
        refused = await call("replay", id=kept.ids["typo"], edits={"body": TYPO_JOB.replace("Nmae", "Name")})
        assert refused.error and "without --allow-writes; nothing was sent" in refused.text
        elsewhere = await call("replay", id=kept.ids["clients"], to="https://example.com")
        assert elsewhere.error and "neither loopback nor the --to" in elsewhere.text
        assert rows(db, "select count(*) n from flows")[0]["n"] == before  # nothing sent, nothing recorded

        got = (await call("replay", id=kept.ids["clients"])).json
        assert got["verdict"] == "ok" and got["status"] == 200 and got["original"] == kept.ids["clients"]
        (row,) = rows(db, "select replay_of, status, request_headers from flows where id = ?", [got["replay"]])
        assert row["replay_of"] == kept.ids["clients"] and row["status"] == 200

    async with session(db, *target, "--allow-writes", env={"XERO_ACCESS_TOKEN": kept.token}) as s:
        call = Recorder(s)
        edits = {"body": TYPO_JOB.replace("Nmae", "Name")}
        unconfirmed = await call("replay", id=kept.ids["typo"], edits=edits)
        assert unconfirmed.error and "confirm=true" in unconfirmed.text
        sent = (await call("replay", id=kept.ids["typo"], edits=edits, confirm=True)).json
        assert sent["before"] != "ok" and sent["verdict"] == "fixed", sent
        assert not [f for f in sent["findings"] if f["side"] == "request"]  # the edited body, checked again
        (body,) = rows(db, "select text from bodies where flow_id = ? and side = 'request'", [sent["replay"]])
        assert "<Name>Year-end</Name>" in body["text"]
        d = (await call("diff", a=kept.ids["typo"])).json
        assert d["b"] == sent["replay"] and d["findings_gone"]


async def test_a_kept_secret_is_returned_only_when_the_server_keeps_secrets(kept: Kept) -> None:
    assert kept.token in rows(kept.db, "select request_headers from flows where id = ?", [kept.ids["clients"]])[0][0]
    for args, shown in (((), False), (("--keep-secrets",), True)):
        async with session(kept.db, *args) as s:
            call = Recorder(s)
            await call("get_flow", id=kept.ids["clients"])
            await call("list_flows")
            await call("diff", a=kept.ids["clients"], b=kept.ids["typo"])
            assert (kept.token in "".join(call.texts)) is shown, args


async def test_streamable_http_on_loopback_and_refused_beyond_it(demo: Path) -> None:
    refused = cli("mcp", "--db", str(demo), "--http", "--listen", "0.0.0.0:8765")
    assert refused.returncode == 2 and refused.stderr.startswith("xero-inspector: error: refusing to listen on 0.0.0.0")
    missing = cli("mcp", "--db", str(demo.parent / "nope.db"))
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1 and "no such database" in missing.stderr
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "inspector", "mcp", "--db", str(demo), "--http", "--listen", f"127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        _wait_for_port(port)
        rebound = httpx.post(url, headers={"Host": f"evil.example:{port}"}, json={}, timeout=WAIT)
        assert rebound.status_code in (403, 421)  # the SDK's guard against DNS rebinding, on for loopback
        async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as s:
            await s.initialize()
            assert {t.name for t in (await s.list_tools()).tools} == TOOLS
            result = await s.call_tool("list_flows", {"filter": "~failed", "limit": 5})
            assert not result.isError and len(json.loads(result.content[0].text)["flows"]) == 5  # type: ignore[union-attr]
    finally:
        server.terminate()
        server.wait(timeout=WAIT)


def _wait_for_port(port: int, hosts: Sequence[str] = ("127.0.0.1",)) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://{hosts[0]}:{port}/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def test_ctrl_c_stops_the_stdio_server_at_once(demo: Path) -> None:
    """An agent ends the server by closing its stdin; a person in a terminal presses Ctrl+C."""
    server = subprocess.Popen(
        [sys.executable, "-m", "inspector", "mcp", "--db", str(demo)],
        cwd=ROOT,
        stdin=subprocess.PIPE,  # held open: no end of file
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}
    assert server.stdin and server.stdout
    server.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}) + "\n")
    server.stdin.flush()
    assert json.loads(server.stdout.readline())["result"]["serverInfo"]["name"] == "xero-inspector"  # serving
    server.send_signal(signal.SIGINT)
    try:
        _, err = server.communicate(timeout=WAIT)
    finally:
        server.kill()
    assert server.returncode == 130, err
    assert err.strip().splitlines()[-1] == "xero-inspector: interrupted" and "Traceback" not in err
