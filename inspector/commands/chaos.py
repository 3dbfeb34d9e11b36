"""``xero-inspector chaos --app CMD``: run an app through the proxy with Xero failing on purpose,
then say, fault by fault, whether the app coped as Xero asks (store/resilience.py).

The app is started as the user would start it, with the proxy and its CA in the environment
variables HTTP clients read (HTTPS_PROXY, SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS,
CURL_CA_BUNDLE), so nothing in the app changes. The proxy records into ``--db`` as ever: every
call of the run can be browsed afterwards, the faults marked injected.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from inspector.proxy.ca import ca_cert_path, ensure_ca
from inspector.proxy.spawn import SpawnError, free_port, start_proxy, stop_proxy, tail
from inspector.store.browse import max_id
from inspector.store.database import open_for_reading
from inspector.store.resilience import Verdict, judge
from inspector.utils import files
from inspector.utils.text import plural, safe

# Every call but signing in: a 429, a 401, a 503 and (Practice Manager) an error inside a 200,
# each once, in that order (the first rule that matches and fires wins, so they come one by one).
NOT_SIGN_IN = "! ~api identity & ! ~api connections"
DEFAULT_PROFILE = (
    f"rate-limit retry=2 {NOT_SIGN_IN} times 1",
    f"token-expired {NOT_SIGN_IN} times 1",
    f"unavailable {NOT_SIGN_IN} times 1",
    "xpm-error ~api xpm & ~m POST times 1",
)
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")


class ChaosError(Exception):
    """Something that stops the run before there is anything to judge: one line."""


@dataclass(frozen=True)
class Run:
    verdicts: list[Verdict]
    app_exit: int
    db: Path

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.ok]


def run(
    app: str,
    faults: Sequence[str],
    db: Path,
    confdir: str,
    proxy_args: Sequence[str] = (),
    timeout: float = 300,
) -> Run:
    argv = shlex.split(app)
    if not argv:
        raise ChaosError("--app: no command given")
    ensure_ca(confdir)
    since = _last_id(db)
    host, port = "127.0.0.1", free_port()
    log = db.with_name(db.name + ".chaos-proxy.log")
    args = ["--db", str(db), "--confdir", confdir, *proxy_args]
    for rule in faults or DEFAULT_PROFILE:
        args += ["--fault", rule]
    try:
        proc = start_proxy(args, host, port, log)
    except SpawnError as e:
        raise ChaosError(str(e)) from e
    try:
        code = _run_app(argv, f"http://{host}:{port}", str(ca_cert_path(confdir)), timeout)
    finally:
        stopped = stop_proxy(proc)
    if stopped not in (0, -signal.SIGINT):
        raise ChaosError(f"the proxy ended with {stopped}:\n{tail(log)}")
    with closing(open_for_reading(db)) as conn:
        return Run(judge(conn, since), code, db)


def _last_id(db: Path) -> int:
    """Calls already in the file are not this run's."""
    if not db.exists():
        return 0
    with closing(open_for_reading(db)) as conn:
        return max_id(conn)


def _run_app(argv: list[str], proxy: str, ca: str, timeout: float) -> int:
    env = {**os.environ, "HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "http_proxy": proxy}
    env |= {name: ca for name in CA_VARIABLES}
    try:
        return subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, timeout=timeout).returncode
    except FileNotFoundError as e:
        raise ChaosError(f"--app: {argv[0]}: no such command") from e
    except subprocess.TimeoutExpired as e:
        raise ChaosError(f"--app: still running after {timeout:.0f} s (--timeout); stopped") from e


def render(r: Run, console: Console) -> None:
    table = Table(
        title=f"{plural(len(r.verdicts), 'injected fault')}, {len(r.failed)} handled badly",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for name, justify in (
        ("flow", "right"),
        ("fault", "left"),
        ("call", "left"),
        ("", "left"),
        ("what the app did", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for v in r.verdicts:
        mark = Text("✔ ok", style="green") if v.ok else Text("✖ FAIL", style="bold red")
        table.add_row(f"#{v.flow_id}", v.kind, Text(safe(v.call)), mark, Text(safe(v.what)))
    console.print(table)
    if r.app_exit:
        console.print(f"the app exited {r.app_exit}", highlight=False)
    console.print(f"Every call of the run: xero-inspector tui --db {r.db}  (~injected: the faults)", soft_wrap=True)


def junit(r: Run) -> str:
    """One test case per injected fault; one that the app handled badly fails."""
    root = etree.Element(
        "testsuites", name="xero-inspector chaos", tests=str(len(r.verdicts)), failures=str(len(r.failed))
    )
    suite = etree.SubElement(
        root, "testsuite", name="resilience", tests=root.get("tests", "0"), failures=root.get("failures", "0")
    )
    for v in r.verdicts:
        case = etree.SubElement(
            suite, "testcase", classname=safe(v.call), name=safe(f"{v.kind} on #{v.flow_id} {v.call}")
        )
        if v.ok:
            etree.SubElement(case, "system-out").text = safe(v.what)
        else:
            etree.SubElement(case, "failure", message=safe(v.what), type=v.kind).text = safe(v.what)
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8").decode()


def write_junit(r: Run, path: str) -> None:
    files.write(path, junit(r))
