"""`up`: the proxy in its own process beside the browser; reused when one already records
into the file, stopped on the way out when `up` started it. Real proxy, real mock, over TLS."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from inspector.samples.mock_xero import MockXero

from inspector.proxy.spawn import free_port
from inspector.tui.up import running_recorder, up
from tests.helpers import WAIT, ProxyProcess, client, rows, wait_for_rows

URL = "https://api.xero.com/practicemanager/3.0/client.api/list"


def wait_live(db: Path) -> None:
    deadline = time.monotonic() + WAIT
    while running_recorder(db) is None:
        assert time.monotonic() < deadline, "no live recorder"
        time.sleep(0.05)


def test_up_starts_a_proxy_for_the_browser_and_stops_it_after(tmp_path: Path, confdir: Path, mock: MockXero) -> None:
    db = tmp_path / "flows.db"
    port = free_port()
    seen: list[tuple[subprocess.Popen[bytes] | None, str]] = []

    def browse(proc: subprocess.Popen[bytes] | None, log: str) -> None:
        seen.append((proc, log))
        wait_live(db)
        proxy = ProxyProcess(tmp_path, confdir)
        proxy.port = port
        with client(proxy) as http:
            assert http.get(URL, headers={"xero-tenant-id": "t"}).status_code == 401
        wait_for_rows(db, "SELECT id FROM flows", 1)

    args = ["--confdir", str(confdir), "--redirect", mock.url, "--upstream-ca", str(mock.ca_path)]
    said: list[str] = []
    result = up(str(db), "127.0.0.1", port, args, browse, said.append)
    ((proc, log),) = seen
    assert said[-1] == f"proxy stopped; recorded into {db}"  # not "proxy stopped (0)"
    assert proc is not None and proc.poll() is not None and result.proxy_exit in (0, -2)
    assert result.reused is None and log == f"{db}.proxy.log" and Path(log).exists()
    assert running_recorder(db) is None  # it said it stopped
    assert rows(db, "SELECT stopped_at FROM recorders")[0]["stopped_at"] is not None


def test_up_attaches_to_a_proxy_already_recording_and_leaves_it_running(tmp_path: Path, confdir: Path) -> None:
    db = tmp_path / "flows.db"
    proxy = ProxyProcess(tmp_path, confdir, db=db).start()
    try:
        wait_live(db)
        seen: list[subprocess.Popen[bytes] | None] = []
        result = up(str(db), "127.0.0.1", free_port(), [], lambda proc, _log: seen.append(proc), lambda _: None)
        assert seen == [None] and result.reused is not None and result.reused.listen == f"127.0.0.1:{proxy.port}"
        assert proxy.proc is not None and proxy.proc.poll() is None
    finally:
        proxy.stop()
