"""The demo: mock Xero + the real proxy (its own process) + scripted traffic, then a summary.

Nothing is faked on the way: the traffic is HTTPS through mitmproxy with our addons,
intercepted with the generated CA and redirected to the mock over TLS.
"""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

from rich.console import Console

from .ca import ca_cert_path
from .samples.demo_traffic import DemoTraffic
from .samples.mock_xero import MockXero
from .spawn import SpawnError, check_port, free_port, start_proxy, stop_proxy, tail
from .store import StoreError, check_path, open_db
from .summary import render, summarize


class DemoError(Exception):
    pass


def fresh_database(db: Path) -> None:
    """The demo starts from an empty file; it only ever deletes a xero-inspector database."""
    if db.exists():
        open_db(db, create=False).close()  # raises StoreError for a file that is not ours
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def run(db: Path, confdir: str, port: int | None, console: Console) -> int:
    host = "127.0.0.1"
    if port:
        check_port(host, port)
    check_path(db)  # a path that cannot hold it fails now, before anything starts or is deleted
    fresh_database(db)
    port = port or free_port(host)
    console.print(f"[bold]xero-inspector demo[/]: a mock Xero, the proxy on {host}:{port}, scripted traffic -> {db}")
    with MockXero() as mock, tempfile.TemporaryDirectory(prefix="xero-demo-") as tmp:
        log = Path(tmp) / "proxy.log"
        args = ["--db", str(db), "--confdir", confdir, "--redirect", mock.url, "--upstream-ca", str(mock.ca_path)]
        try:
            proc = start_proxy(args, host, port, log)  # stopped again if anything interrupts its start
        except SpawnError as e:
            raise DemoError(str(e)) from e
        try:
            DemoTraffic(f"http://{host}:{port}", ca_cert_path(confdir), mock, console.print).run()
        finally:
            code = stop_proxy(proc)
        if code not in (0, -signal.SIGINT):
            raise DemoError(f"the proxy ended with {code}:\n{tail(log)}")
    try:
        database = open_db(db, create=False)
    except StoreError as e:
        raise DemoError(str(e)) from e
    with database:
        console.print()
        render(summarize(database), console)
    return 0
