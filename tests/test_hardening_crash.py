"""Hardening: kill -9 the proxy while it records at full speed. After a restart the file passes
SQLite's integrity check and holds every exchange that completed more than the recorder's
flush interval before the kill (what it held for its next hand-over is all that may be lost)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from inspector.samples.mock_xero import TENANTS, MockConfig, MockXero

from inspector.proxy.handover import HANDOVER_INTERVAL
from tests.helpers import WAIT, ProxyProcess, client

pytestmark = [pytest.mark.hardening, pytest.mark.e2e]

URL = "https://api.xero.com/practicemanager/3.0/client.api/list"
# The flush interval (the proxy hands what it holds to its writer process this often), plus
# slack for the event loop's timer under load and for the client's clock read after the answer.
FLUSH = HANDOVER_INTERVAL + 0.1


@pytest.fixture
def unlimited() -> Iterator[MockXero]:
    config = MockConfig(minute_limit=10**9, day_limit=10**9, app_minute_limit=10**9)
    with MockXero(config=config) as server:
        yield server


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_kill_9_under_load_loses_nothing_older_than_the_flush_interval(
    tmp_path: Path, confdir: Path, unlimited: MockXero
) -> None:
    args = ["--redirect", unlimited.url, "--upstream-ca", str(unlimited.ca_path), "--quiet"]
    proxy = ProxyProcess(tmp_path, confdir, args).start()
    assert proxy.proc is not None
    token = unlimited.app.tokens.issue(["practicemanager"])
    sent: set[str] = set()
    done: dict[str, float] = {}  # probe -> when its answer had arrived
    lock, stop = threading.Lock(), threading.Event()

    def hammer(worker: int) -> None:
        with client(proxy) as http:
            n = 0
            while not stop.is_set():
                probe = f"{worker}-{n}"
                n += 1
                headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": TENANTS[0].id, "X-Probe": probe}
                with lock:
                    sent.add(probe)
                try:
                    resp = http.get(URL, headers=headers)
                except Exception:  # the proxy died under this call: it never completed
                    return
                if resp.status_code == 200:
                    with lock:
                        done[probe] = time.monotonic()

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    try:
        deadline = time.monotonic() + WAIT
        while len(done) < 600 and time.monotonic() < deadline:  # well into the load
            time.sleep(0.02)
        writer = children(proxy.proc.pid)
        killed_at = time.monotonic()
        proxy.proc.send_signal(signal.SIGKILL)
        proxy.proc.wait()
    finally:
        stop.set()
        for w in workers:
            w.join(WAIT)
    assert len(done) >= 600 and writer, "the load never got going"
    # The writer process outlives the proxy just long enough to store what it was handed.
    deadline = time.monotonic() + WAIT
    while not all(gone(pid) for pid in writer) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in writer)

    restarted = ProxyProcess(tmp_path, confdir, args, db=proxy.db).start()  # the same file, opened again
    restarted.stop()
    with sqlite3.connect(proxy.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = set()
        for (headers,) in conn.execute("SELECT request_headers FROM flows"):
            stored |= {v for k, v in json.loads(headers) if k.lower() == "x-probe"}
    must = {p for p, t in done.items() if t < killed_at - FLUSH}
    missing = must - stored
    print(
        f"sent {len(sent)}, answered {len(done)}, answered {FLUSH:.2f} s before the kill {len(must)}, stored {len(stored)}"
    )
    assert not missing, f"{len(missing)} of {len(must)} exchanges completed before the kill are missing"
    assert len(must) >= 400 and stored <= sent  # and nothing recorded that was not sent
