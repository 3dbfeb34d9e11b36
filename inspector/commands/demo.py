"""The demo: mock Xero + the real proxy (its own process) + scripted traffic, then a summary.

Nothing is faked on the way: the traffic is HTTPS through mitmproxy with our addons,
intercepted with the generated CA and redirected to the mock over TLS.
"""

from __future__ import annotations

import functools
import signal
import tempfile
from contextlib import closing
from pathlib import Path

from rich.console import Console

from inspector.commands import migrate
from inspector.commands.replay import Options, Replayer
from inspector.ingest.catalog import Catalog
from inspector.ingest.validate import Validator
from inspector.proxy.ca import ca_cert_path
from inspector.proxy.spawn import SpawnError, check_port, free_port, start_proxy, stop_proxy, tail
from inspector.samples.demo_traffic import BREAK, FAULT, DemoTraffic
from inspector.samples.mock_xero import TENANTS, MockXero
from inspector.store.database import StoreError, check_path, open_for_reading
from inspector.store.flows import load, v1_calls
from inspector.store.summary import render, summarize
from inspector.utils.text import safe


class DemoError(Exception):
    pass


def fresh_database(db: Path) -> None:
    """The demo starts from an empty file; it only ever deletes a xero-inspector database."""
    if db.exists():
        check_path(db)  # raises StoreError for a file that is not ours
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
        args += ["--fault", FAULT, "--break", BREAK]
        try:
            proc = start_proxy(args, host, port, log)  # stopped again if anything interrupts its start
        except SpawnError as e:
            raise DemoError(str(e)) from e
        try:
            DemoTraffic(f"http://{host}:{port}", ca_cert_path(confdir), mock, db, console.print).run()
        finally:
            code = stop_proxy(proc)
        if code not in (0, -signal.SIGINT):
            raise DemoError(f"the proxy ended with {code}:\n{tail(log)}")
    with MockXero() as mock:  # the traffic's last step took the first one down
        migrate_to_v3(db, mock, console)
    try:
        conn = open_for_reading(db)
    except StoreError as e:
        raise DemoError(str(e)) from e
    with closing(conn):
        console.print()
        render(summarize(conn), console)
    return 0


def migrate_to_v3(db: Path, mock: MockXero, console: Console) -> None:
    """The recorded v1 calls tried on v3, as `replay --as-v3 xpm|wfm` does: the read passes on
    both; the writes pass on Practice Manager (integer ids) and fail on WorkflowMax until their
    bodies name records by UUID, which `migrate` lists."""
    catalog = Catalog.load()
    validator = Validator.for_catalog(catalog)
    plan = migrate.build(db, catalog, validator)
    say = functools.partial(console.print, highlight=False, markup=False)
    say(f"The v1 to v3 checklist (xero-inspector migrate --db {db}):")
    for line in migrate.summary(plan).split("; "):
        say(f"  {line}")
    for e in plan.endpoints:
        for c in (c for b in e.bodies for c in b.checks if c.renames):
            say(safe(f"  {e.method} {e.endpoint} on {migrate.TARGETS[c.target].title}: rename {'; '.join(c.renames)}"))
    say("WorkflowMax v1 calls replayed on v3 (replay --as-v3), straight to the mock")
    with closing(open_for_reading(db)) as conn:
        flows = [f for f in (load(conn, r["id"]) for r in v1_calls(conn, replays=True)) if f is not None]
    token = mock.app.tokens.issue(["practicemanager", "workflowmax"])
    for key, tenant_type in (("xpm", "PRACTICEMANAGER"), ("wfm", "WORKFLOWMAX")):
        tenant = next(t.id for t in TENANTS if t.type == tenant_type)
        opts = Options(token=token, tenant=tenant, to=mock.url, ca=str(mock.ca_path), as_v3=key)
        with Replayer(db, catalog, validator, opts) as replayer:
            for flow in flows:
                result = replayer.send(flow, replayer.prepare(flow))
                why = f"  ({result.error})" if result.error else ""
                line = f"  {result.status or '---'}  #{flow.id} {flow.row['method']} {flow.row['endpoint']} as {key} v3"
                say(safe(f"{line}: {result.verdict}{why}"))
