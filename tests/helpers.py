"""Real parts for tests: the proxy as its own process, the mock over TLS, a trusting client."""

from __future__ import annotations

import os
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from inspector.proxy.spawn import free_port, wait_listening

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0  # how long to wait for something asynchronous to happen (never asserted on)


class ProxyProcess:
    """`xero-inspector proxy ...` (or any command) in a subprocess, listening on a free port."""

    def __init__(
        self,
        tmp: Path,
        confdir: Path,
        args: Sequence[str] = (),
        db: Path | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.db = db or tmp / "flows.db"
        self.confdir = confdir
        self.log = tmp / f"proxy-{self.port}.log"
        self.cmd = (
            list(command)
            if command
            else [
                sys.executable,
                "-m",
                "inspector",
                "proxy",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--db",
                str(self.db),
                "--confdir",
                str(confdir),
                *args,
            ]
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ProxyProcess:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        wait_listening("127.0.0.1", self.port, self.proc, self.log)
        return self

    def stop(self, sig: int = signal.SIGINT) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text("utf-8", "replace")


def client(proxy: ProxyProcess, cafile: Path | None = None, **kw: Any) -> httpx.Client:
    """An httpx client sent through the proxy, trusting the proxy's CA (or ``cafile``)."""
    ca = cafile or proxy.confdir / "mitmproxy-ca-cert.pem"
    return httpx.Client(
        proxy=proxy.url, verify=ssl.create_default_context(cafile=str(ca)), timeout=WAIT, trust_env=False, **kw
    )


def rows(db: Path, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_for_rows(db: Path, sql: str, count: int, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
    """Rows the writer thread stores a moment after the exchange; waits, never times."""
    deadline = time.monotonic() + WAIT
    found: list[sqlite3.Row] = []
    while time.monotonic() < deadline:
        if db.exists():
            try:
                found = rows(db, sql, params)
            except sqlite3.OperationalError:
                found = []
            if len(found) >= count:
                return found
        time.sleep(0.05)
    raise AssertionError(f"expected {count} rows for {sql!r}, found {len(found)}")


@dataclass
class H2Response:
    status: int
    headers: dict[str, str]
    body: bytes  # as it came off the wire: content-encoding still applied
    protocol: str


def h2_request(proxy: ProxyProcess, method: str, url: str, headers: dict[str, str]) -> H2Response:
    """A request without a body over HTTP/2 through the proxy, as a browser or an h2 client
    would send it: CONNECT, then TLS offering only h2 (a client offering http/1.1 first gets it)."""
    import socket
    from urllib.parse import urlsplit

    import h2.config
    import h2.connection
    import h2.events

    parts = urlsplit(url)
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=WAIT)
    sock.sendall(f"CONNECT {parts.hostname}:443 HTTP/1.1\r\nHost: {parts.hostname}:443\r\n\r\n".encode())
    assert b" 200 " in sock.recv(4096)
    context = ssl.create_default_context(cafile=str(proxy.confdir / "mitmproxy-ca-cert.pem"))
    context.set_alpn_protocols(["h2"])
    tls = context.wrap_socket(sock, server_hostname=parts.hostname)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = [(":method", method), (":authority", parts.hostname or ""), (":scheme", "https"), (":path", path)]
    conn.send_headers(1, request + [(k.lower(), v) for k, v in headers.items()], end_stream=True)
    tls.sendall(conn.data_to_send())
    response = H2Response(0, {}, b"", str(tls.selected_alpn_protocol()))
    with tls:
        while True:
            data = tls.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    fields = {bytes(k).decode(): bytes(v).decode() for k, v in event.headers}
                    response.status = int(fields.pop(":status"))
                    response.headers = fields
                elif isinstance(event, h2.events.DataReceived):
                    response.body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    return response
            tls.sendall(conn.data_to_send())
    return response


class Tmux:
    """A real terminal for a test: a private tmux server (its own socket, no user config) with
    one pane, whose every output byte can be kept (``record``)."""

    DONE = "XI-42"  # printed by the shell when the command run with ``run`` has exited

    def __init__(self, folder: Path, width: int = 120, height: int = 40) -> None:
        self.base = ["tmux", "-L", f"xi-{folder.name}", "-f", "/dev/null"]
        self.raw = folder / "raw-terminal-output"
        self.size = (str(width), str(height))

    def __enter__(self) -> Tmux:
        self("new-session", "-d", "-s", "t", "-x", self.size[0], "-y", self.size[1])
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)

    def __call__(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, check=True).stdout

    def record(self) -> None:
        self("pipe-pane", "-o", "-t", "t", f"cat >> {self.raw}")

    def title(self) -> str:
        return self("display", "-p", "-t", "t", "#{pane_title}")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "t", *keys)

    def run(self, command: str) -> None:
        """Type ``command`` at the shell; DONE shows once it exits (the shell computes it, so
        the typed line itself does not show it)."""
        self.keys(f"cd {ROOT} && {command}; echo XI-$((40+2))", "Enter")

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "t")

    def wait_for(self, text: str) -> str:
        deadline = time.monotonic() + WAIT
        while text not in (shown := self.screen()):
            assert time.monotonic() < deadline, f"{text!r} never showed:\n{shown}"
            time.sleep(0.1)
        return shown


def copy_db(src: Path, dst: Path) -> Path:
    """A copy of a recording (SQLite's backup: consistent even with its WAL beside it)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    a.backup(b)
    a.close()
    b.close()
    return dst
