"""Hardening: the traffic passes through untouched while the recorder fails underneath it.

1,000 exchanges of every shape (gzip, deflate and br bodies, chunked both ways, binary PDFs,
10 MB each way, empty answers, HEAD), over HTTP/1.1 and HTTP/2, through the real proxy to a
real TLS upstream, while the recorder meets one fault after another: exceptions in ingest and
in insert (injected, tests/faults/sitecustomize.py), its writer process killed, a full disk and
a read-only one (real, on a file system of the test's own, tests/disk.py), and the database
locked for 10 s by another process. The client must get exactly the upstream's bytes every time; what the recorder
could not store it must say (the log and the recorders row), and after each fault it records
again.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.disk import Disk, unavailable
from tests.helpers import ROOT, ProxyProcess, client, h2_request
from tests.varied_upstream import VariedUpstream, request_body, response, seq_of, shape

pytestmark = pytest.mark.hardening

TOTAL = 1000
RATE = 25.0  # exchanges a second, so the faults below fall across the traffic
THREADS = 4
# (fault, after how many exchanges it starts, how long it lasts in seconds)
FAULTS = (
    ("ingest", 100, 2.0),
    ("insert", 200, 2.0),
    ("writer killed", 260, 2.0),
    ("disk full", 320, 2.0),
    ("read-only", 420, 2.0),
    ("locked", 540, 10.0),
)


HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


@dataclass
class Result:
    started: float
    ended: float
    status: int
    body: str  # sha256 of the response body as the client read it off the wire
    encoding: str
    content_type: str
    http_version: str = ""
    error: str = ""


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    d = Disk(tmp_path)
    try:
        d.start()
    except (RuntimeError, subprocess.CalledProcessError) as e:  # no loop devices here, say
        pytest.skip(f"cannot make a disk of the test's own: {e}")
    try:
        yield d
    finally:
        d.stop()
        d.image.unlink()  # a sparse 2 GB file, with a few hundred MB of flows in it


def exchange(http: httpx.Client, seq: int, h2: ProxyProcess | None = None) -> Result:
    """One exchange through the proxy; with ``h2``, over HTTP/2 when it sends no body."""
    s = shape(seq)
    body = request_body(seq)
    headers = {"Xero-Tenant-Id": "5a1e2f5c-0000-4000-8000-00000000f1de"}
    url = f"https://api.xero.com{s.path}"
    started = time.time()
    if h2 is not None and not s.sends_body:
        answer = h2_request(h2, s.method, url, headers)
        return Result(
            started,
            time.time(),
            answer.status,
            hashlib.sha256(answer.body).hexdigest(),
            answer.headers.get("content-encoding", ""),
            answer.headers.get("content-type", ""),
            "HTTP/2" if answer.protocol == "h2" else answer.protocol,
        )
    if s.sends_body:
        headers["Content-Type"] = "application/pdf" if s.name == "big-upload" else "text/xml; charset=utf-8"
    if s.name == "post-gzip":
        headers["Content-Encoding"] = "gzip"
    content: bytes | Iterator[bytes] | None = body if s.sends_body else None
    if s.name == "post-chunked":  # no length known up front: httpx sends it chunked
        content = iter([body[i : i + 333] for i in range(0, len(body), 333)])
    try:
        with http.stream(s.method, url, headers=headers, content=content) as r:
            raw = b"".join(r.iter_raw())
            return Result(
                started,
                time.time(),
                r.status_code,
                hashlib.sha256(raw).hexdigest(),
                r.headers.get("content-encoding", ""),
                r.headers.get("content-type", ""),
                r.http_version,
            )
    except httpx.HTTPError as e:
        return Result(started, time.time(), 0, "", "", "", error=f"{type(e).__name__}: {e}")


class Faults:
    """Starts and clears each fault in turn as the traffic passes the counts in FAULTS."""

    def __init__(self, disk: Disk, db: Path, control: Path, proxy: ProxyProcess) -> None:
        assert proxy.proc is not None
        self.disk, self.db, self.control = disk, db, control
        self.proxy_pid, self.log = proxy.proc.pid, proxy.log
        self.recoveries = 0
        self.windows: dict[str, tuple[float, float]] = {}
        self.done = 0
        self.cond = threading.Condition()
        self.failure: BaseException | None = None
        self._locker: subprocess.Popen[str] | None = None

    def count(self) -> None:
        with self.cond:
            self.done += 1
            self.cond.notify_all()

    def run(self) -> None:
        try:
            for name, after, seconds in FAULTS:
                with self.cond:
                    self.cond.wait_for(lambda after=after: self.done >= after)  # type: ignore[misc]
                self._set(name, True)
                on = time.time()
                time.sleep(seconds)
                self._set(name, False)
                self.windows[name] = (on, time.time())
                if name in ("disk full", "read-only"):
                    # One fault at a time, as the writer sees them: it retries with a back-off
                    # of up to 5 s, so wait for it to have written before the next begins.
                    self._wait_for_log("recorder writes again", self.recoveries + 1)
                    self.recoveries += 1
        except BaseException as e:  # the test says so; a silent controller would pass it
            self.failure = e

    def _wait_for_log(self, text: str, count: int) -> None:
        deadline = time.monotonic() + 60
        while self.log.read_text("utf-8", "replace").count(text) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the proxy's log never said {text!r} {count} time(s)")
            time.sleep(0.05)

    def _set(self, name: str, on: bool) -> None:
        files = [self.db, self.db.with_name(self.db.name + "-wal")]
        if name in ("ingest", "insert"):
            self.control.write_text(name if on else "")
        elif name == "disk full":
            self.disk.fill() if on else self.disk.unfill()
        elif name == "read-only":
            self.disk.read_only(files, on)
        elif name == "writer killed":
            if on:  # the proxy's one child is its writer process; the proxy starts a new one
                pid = int(Path(f"/proc/{self.proxy_pid}/task/{self.proxy_pid}/children").read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
        elif on:  # locked: another process holds the write lock, as a second writer would
            # Inside the disk's namespace: SQLite resolves /proc/<pid>/root to "/" and would
            # open a different file from outside.
            self._locker = subprocess.Popen(
                self.disk.command([sys.executable, "-c", HOLD_LOCK, str(self.db)]),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self._locker.stdout is not None and self._locker.stdout.readline().strip() == "locked"
        else:
            assert self._locker is not None and self._locker.stdin is not None
            self._locker.stdin.close()
            assert self._locker.wait(30) == 0


def test_traffic_passes_untouched_while_the_recorder_fails(
    tmp_path: Path, confdir: Path, disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    control = tmp_path / "faults"
    control.write_text("")
    monkeypatch.setenv("XERO_INSPECTOR_FAULTS", str(control))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "tests" / "faults"), str(ROOT)]))
    db = disk.inside / "flows.db"
    results: dict[int, Result] = {}
    with VariedUpstream(tmp_path) as upstream:
        proxy = ProxyProcess(
            tmp_path, confdir, ["--redirect", upstream.url, "--upstream-ca", str(upstream.ca_path)], db=db
        )
        proxy.cmd = disk.command(proxy.cmd)
        proxy.start()
        try:
            faults = Faults(disk, db, control, proxy)
            controller = threading.Thread(target=faults.run, daemon=True)
            controller.start()
            next_seq = iter(range(TOTAL))
            take = threading.Lock()
            t0 = time.monotonic()

            def traffic(http2: bool) -> None:
                with client(proxy) as http:
                    while True:
                        with take:
                            seq = next(next_seq, None)
                        if seq is None:
                            return
                        time.sleep(max(0.0, t0 + seq / RATE - time.monotonic()))
                        results[seq] = exchange(http, seq, proxy if http2 else None)
                        faults.count()

            threads = [threading.Thread(target=traffic, args=(i % 2 == 1,)) for i in range(THREADS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            controller.join(60)
            assert faults.failure is None, f"a fault could not be set: {faults.failure!r}"
            assert len(faults.windows) == len(FAULTS), "the traffic ended before every fault had run"
            assert proxy.proc is not None and proxy.proc.poll() is None, "the proxy died:\n" + proxy.output()
        finally:
            code = proxy.stop()
    log = proxy.output()
    assert code == 0, log

    # 1. The client got exactly the upstream's bytes, every time, both ways.
    wrong = []
    for seq in range(TOTAL):
        r, seen = results.get(seq), upstream.seen.get(seq)
        status, s, _, _ = response(seq)
        sent = hashlib.sha256(request_body(seq)).hexdigest()
        if r is None or seen is None or r.error:
            wrong.append((seq, s.name, r.error if r else "no result", "upstream saw nothing" if seen is None else ""))
        elif (r.status, r.body, r.encoding, r.content_type) != (seen.status, seen.sent, seen.encoding, s.content_type):
            wrong.append((seq, s.name, (r.status, r.encoding, r.content_type), (seen.status, seen.encoding)))
        elif seen.received != sent:
            wrong.append((seq, s.name, "request body changed on the way", ""))
    assert not wrong, f"{len(wrong)} exchange(s) not passed through exactly, first: {wrong[:5]}"
    assert {r.http_version for r in results.values()} == {"HTTP/1.1", "HTTP/2"}

    # 2. What was stored, and what the recorder said it could not store, account for every one.
    # A copy to read: SQLite resolves /proc/<pid>/root to "/", so it cannot open the file there.
    # The proxy has stopped, so the file and its WAL are still.
    store = tmp_path / "stored.db"
    for suffix in ("", "-wal"):
        with contextlib.suppress(FileNotFoundError):
            shutil.copyfile(disk.outside(db.with_name(db.name + suffix)), store.with_name(store.name + suffix))
    conn = sqlite3.connect(store)
    conn.row_factory = sqlite3.Row
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        flows = conn.execute("SELECT id, url, method, status, ingest_error FROM flows").fetchall()
        (recorded, dropped, errors), *others = conn.execute("SELECT recorded, dropped, errors FROM recorders")
        assert not others, "one recorders row for the proxy, whichever writer process kept it"
        stored_bodies = {
            (row["flow_id"], row["side"]): row["data"] if row["data"] is not None else row["text"].encode()
            for row in conn.execute("SELECT flow_id, side, text, data FROM bodies")
        }
    finally:
        conn.close()
    by_seq: dict[int, list[sqlite3.Row]] = {}
    for row in flows:
        by_seq.setdefault(seq_of(row["url"]), []).append(row)
    twice = [seq for seq, rows in by_seq.items() if len(rows) > 1]
    assert not twice, f"stored more than once: {twice[:10]}"
    lost = sorted(set(range(TOTAL)) - set(by_seq))
    assert len(flows) == recorded, f"{len(flows)} flows stored, the recorders row says {recorded}"
    # Exact, even for a writer killed between committing a batch and telling the proxy: its
    # successor finds the batch counted in the row, saved in the batch's own transaction.
    assert dropped == len(lost), f"{len(lost)} not stored, the recorders row says {dropped} dropped"
    stopped = re.search(r"recorder stopped: (\d+) recorded, (\d+) dropped, (\d+) errors", log)
    assert stopped and (int(stopped[1]), int(stopped[2])) == (recorded, dropped), log[-3000:]

    # 3. Only the failing insert and the killed writer cost records, and the recorder said so;
    #    every other fault was waited out.
    ingest_off = faults.windows["ingest"][1]
    insert_on, insert_off = faults.windows["insert"]
    killed_on, killed_off = faults.windows["writer killed"]
    by_insert = [s for s in lost if insert_on - 1.0 <= results[s].started < insert_off]
    by_kill = [s for s in lost if killed_on - 1.0 <= results[s].started <= killed_off]
    assert by_insert and by_kill, "a fault that should cost records did not bite"
    assert set(lost) == set(by_insert) | set(by_kill), "records lost outside the faults that lose them"
    assert "could not store" in log and "injected fault: insert" in log, log[-3000:]
    assert "recorder process is gone" in log and "recorder process started again" in log
    # ingest's own failure keeps the exchange, without what it could not work out
    fallback = [s for s, rows in by_seq.items() if rows[0]["ingest_error"]]
    assert fallback and all("injected fault: ingest" in by_seq[s][0]["ingest_error"] for s in fallback)
    assert all(results[s].started < ingest_off for s in fallback)
    for message in ("database or disk is full", "disk I/O error"):
        assert message in log, f"the recorder never said {message!r}:\n{log[-3000:]}"
    assert "recorder writes again" in log
    assert errors >= 2 + len(fallback)

    # 4. It records again after each fault: everything that started after the new writer was
    #    up is stored, with the bodies the upstream and the client exchanged.
    after = [s for s in range(TOTAL) if results[s].started > killed_off]
    assert len(after) > TOTAL // 2 and not set(after) - set(by_seq)
    for name in ("disk full", "read-only", "locked"):
        on, off = faults.windows[name]
        during = [s for s in after if on <= results[s].started <= off]
        assert during, f"no traffic while {name}"
    # The lock was real: what came in while it was held was stored only once it was let go.
    on, off = faults.windows["locked"]
    logged = stored_at(log)
    held = [s for s in range(TOTAL) if on + 0.5 <= results[s].started <= off - 0.5]
    early = [s for s in held if logged[s] < time_of_day(off) - 0.05]
    assert held and not early, f"stored while the database was locked: {early[:10]}"
    checked = 0
    for s in after:
        flow = by_seq[s][0]
        status, sh, decoded, _ = response(s)
        assert flow["status"] == status
        if decoded and sh.method != "HEAD":
            assert stored_bodies[(flow["id"], "response")] == decoded, f"stored response of #{s} ({sh.name})"
            checked += 1
        sent = request_body(s)
        if sent:
            body = gzip.decompress(sent) if sh.name == "post-gzip" else sent
            assert stored_bodies[(flow["id"], "request")] == body, f"stored request of #{s} ({sh.name})"
    assert checked > 0


def stored_at(log: str) -> dict[int, float]:
    """Exchange number -> the time of day the proxy's flow log says it was stored."""
    found = {}
    for m in re.finditer(r"^\[(\d\d):(\d\d):(\d\d\.\d+)\] #\d+ \S+ (\S+)", log, re.MULTILINE):
        found[seq_of(m[4])] = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    return found


def time_of_day(t: float) -> float:
    local = time.localtime(t)
    return local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec + t % 1
