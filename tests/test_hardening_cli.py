"""Hardening: exposure (loopback unless asked; the store and the CA key owner-only) and bad CLI
input (one clear line, exit code 2, no traceback, for every command that reads a store or a catalog)."""

from __future__ import annotations

import socket
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from inspector.proxy.spawn import free_port
from tests.helpers import ROOT, ProxyProcess, wait_for_rows

pytestmark = pytest.mark.hardening


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit 2, one line on stderr naming the problem, nothing else."""
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert len(err.splitlines()) == 1 and "Traceback" not in result.stderr + result.stdout, result.stderr
    assert err.startswith("xero-inspector: error: ") and not result.stdout.strip()
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real store with flows in it, and every kind of file that is not one."""
    tmp = tmp_path_factory.mktemp("bad-input")
    ours = tmp / "ours.db"
    assert cli("demo", "--headless", "--db", str(ours), "--confdir", str(tmp / "conf"), cwd=tmp).returncode == 0
    (tmp / "text.db").write_text("these are not the flows you are looking for\n" * 50)
    with sqlite3.connect(tmp / "other.db") as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    newer = tmp / "newer.db"
    newer.write_bytes(ours.read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    # User catalogs whose schema cannot be used: missing, a directory, not XML, not a schema.
    for name, xsd in (("missing", None), ("folder", "dir"), ("garbage", "<xs:schema"), ("notschema", "<Widget/>")):
        folder = tmp / name
        folder.mkdir()
        if xsd == "dir":
            (folder / "widget.xsd").mkdir()
        elif xsd is not None:
            (folder / "widget.xsd").write_text(xsd)
        (folder / "my.toml").write_text(
            '[[schema]]\nfamilies = ["xpm-3.0"]\nfile = "widget.xsd"\n'
            'requests = [{ method = "POST", path = "job.api/add", roots = ["Widget"] }]\n'
        )
    return tmp


STORE_COMMANDS = (
    ("report", "--db"),
    ("export", "--db"),
    ("revalidate", "--db"),
    ("replay", "1", "--db"),
    ("diff", "1", "2", "--db"),
    ("tui", "--db"),
)


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=lambda c: c[0])
def test_every_store_command_refuses_a_file_it_cannot_use_in_one_line(files: Path, command: tuple[str, ...]) -> None:
    cases = (
        ("missing.db", "missing.db: no such database"),
        ("text.db", "text.db: not a xero-inspector database"),
        ("other.db", "other.db: not a xero-inspector database"),
        ("newer.db", "schema v99 is newer than this xero-inspector knows"),
    )
    for name, message in cases:
        before = contents(files / name)
        one_line_error(cli(*command, str(files / name), cwd=files), message)
        assert contents(files / name) == before  # refused before anything was written
    assert not (files / "missing.db").exists()


def contents(path: Path) -> object:
    """What a file holds: its bytes, or for SQLite its versions, schema and rows (SQLite may
    touch its header's change counter on a read-only open and close)."""
    if not path.exists() or not path.read_bytes().startswith(b"SQLite format 3"):
        return path.read_bytes() if path.exists() else None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return (
            conn.execute("PRAGMA user_version").fetchone(),
            conn.execute("PRAGMA application_id").fetchone(),
            conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall(),
            [conn.execute(f'SELECT count(*) FROM "{t}"').fetchone() for t in tables if not t.startswith("bodies_fts")],
        )


def test_a_bad_filter_and_an_unknown_flow_are_one_line(files: Path) -> None:
    db = str(files / "ours.db")
    for command in (("report", "--filter"), ("export", "--filter")):
        one_line_error(cli(*command, "~c 400 & (~bogus", "--db", db, cwd=files), "unknown filter ~bogus")
    one_line_error(cli("report", "--filter", "~c 400 & (", "--db", db, cwd=files), "bad filter")
    for command in (("export", "99999"), ("replay", "99999"), ("diff", "1", "99999")):
        one_line_error(cli(*command, "--db", db, cwd=files), "no flow 99999")


@pytest.mark.parametrize("case", ["missing", "folder", "garbage", "notschema"])
def test_an_unusable_xsd_in_a_user_catalog_is_one_line(files: Path, case: str) -> None:
    catalog = str(files / case / "my.toml")
    body = files / "job.xml"
    body.write_text("<Job><Name>A</Name></Job>")
    for command in (
        ("validate", "--catalog", catalog, "--endpoint", "POST job.api/add", str(body)),
        ("endpoints", "--catalog", catalog),
        ("revalidate", "--catalog", catalog, "--db", str(files / "ours.db")),
    ):
        one_line_error(cli(*command, cwd=files), "widget.xsd")
    port = free_port()
    proxy = cli("proxy", "--listen", f"127.0.0.1:{port}", "--catalog", catalog, "--db", str(files / "p.db"), cwd=files)
    one_line_error(proxy, "widget.xsd")


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_proxy_keeps_to_loopback_unless_asked(tmp_path: Path, confdir: Path) -> None:
    port = free_port()
    refused = cli("proxy", "--listen", f"0.0.0.0:{port}", "--db", str(tmp_path / "x.db"), cwd=tmp_path)
    one_line_error(refused, "refusing to listen on 0.0.0.0", "--allow-remote")
    assert not listening(port) and not (tmp_path / "x.db").exists()
    up = cli("up", "--listen", f"0.0.0.0:{port}", "--db", str(tmp_path / "y.db"), cwd=tmp_path)
    one_line_error(up, "refusing to listen on 0.0.0.0")

    proxy = ProxyProcess(tmp_path, confdir, args=["--allow-remote"])
    proxy.cmd[proxy.cmd.index("--listen") + 1] = f"0.0.0.0:{proxy.port}"
    proxy.start()
    try:
        assert listening(proxy.port)
    finally:
        proxy.stop()
    assert "warning: listening on 0.0.0.0: anyone who can reach it" in proxy.output()

    default = ProxyProcess(tmp_path, confdir).start()  # the README's way: --listen 127.0.0.1:PORT
    try:
        assert listening(default.port)
    finally:
        default.stop()
    assert "warning" not in default.output()
    assert "default: 127.0.0.1:8080" in cli("proxy", "--help", cwd=ROOT).stdout


def test_the_store_and_the_ca_key_are_owner_only(tmp_path: Path, confdir: Path) -> None:
    proxy = ProxyProcess(tmp_path, confdir).start()
    # The port listens before the writer process has made the file: stopped at once, there may be none.
    wait_for_rows(proxy.db, "SELECT id FROM recorders", 1)
    proxy.stop()
    for path in (proxy.db, confdir / "mitmproxy-ca.pem", confdir / "mitmproxy-ca.p12"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
