"""The demo: mock Xero + the real proxy (its own process) + scripted traffic, then a summary.

Nothing is faked on the way: the traffic is HTTPS through mitmproxy with our addons,
intercepted with the generated CA and redirected to the mock over TLS.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from .ca import ca_cert_path
from .samples.demo_traffic import DemoTraffic
from .samples.mock_xero import MockXero
from .store import StoreError, open_db
from .summary import render, summarize

STARTUP_TIMEOUT = 60.0


class DemoError(Exception):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_listening(
    host: str, port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = STARTUP_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"the proxy exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise DemoError(f"the proxy did not listen on {host}:{port} within {timeout:.0f}s:\n{_tail(log)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""


def fresh_database(db: Path) -> None:
    """The demo starts from an empty file; it only ever deletes a xero-inspector database."""
    if db.exists():
        open_db(db, create=False).close()  # raises StoreError for a file that is not ours
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def run(db: Path, confdir: str, port: int | None, console: Console) -> int:
    fresh_database(db)
    open_db(db).close()  # a path that cannot hold it fails now, before anything starts
    host = "127.0.0.1"
    port = port or free_port(host)
    console.print(f"[bold]xero-inspector demo[/]: a mock Xero, the proxy on {host}:{port}, scripted traffic -> {db}")
    mock = MockXero().start()
    with tempfile.TemporaryDirectory(prefix="xero-demo-") as tmp:
        log = Path(tmp) / "proxy.log"
        cmd = [
            sys.executable,
            "-m",
            "inspector",
            "proxy",
            "--listen",
            f"{host}:{port}",
            "--db",
            str(db),
            "--confdir",
            confdir,
            "--redirect",
            mock.url,
            "--upstream-ca",
            str(mock.ca_path),
        ]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        try:
            wait_listening(host, port, proc, log)
            DemoTraffic(f"http://{host}:{port}", ca_cert_path(confdir), mock, console.print).run()
        finally:
            mock.stop()
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # like Ctrl+C: the recorder writes what is queued
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if proc.returncode not in (0, -signal.SIGINT):
            raise DemoError(f"the proxy ended with {proc.returncode}:\n{_tail(log)}")
    try:
        database = open_db(db, create=False)
    except StoreError as e:
        raise DemoError(str(e)) from e
    with database:
        console.print()
        render(summarize(database), console)
    return 0
