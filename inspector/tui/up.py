"""`up`: the proxy in a process of its own, and the browser on the same file.

A proxy already recording into that file is reused and left running; one started here
is stopped (like Ctrl+C, so it writes what is queued) when the browser closes, or when
anything interrupts its start. A start that fails leaves no database behind.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

from inspector.proxy import spawn
from inspector.store.browse import RecorderStatus, recorder_status
from inspector.store.database import check_path, open_db, open_for_reading

Browse = Callable[[Popen[bytes] | None, str], None]
Say = Callable[[str], None]
ERROR_PREFIX = "xero-inspector: error: "


@dataclass(frozen=True)
class UpResult:
    reused: RecorderStatus | None  # the recorder attached to, if one was running
    proxy_exit: int | None  # the exit code of the proxy started here


def running_recorder(db: str | Path) -> RecorderStatus | None:
    if not Path(db).exists():
        return None
    with closing(open_for_reading(db)) as conn:  # migrated: the browser and the proxy agree on the schema
        status = recorder_status(conn)
    return status if status is not None and status.live else None


def up(db: str, host: str, port: int, proxy_args: Sequence[str], browse: Browse, say: Say) -> UpResult:
    """Run ``browse(proxy, log)`` with a proxy recording into ``db``."""
    running = running_recorder(db)
    if running is not None:
        say(f"a proxy is already recording into {db} on {running.listen}; attaching to it")
        browse(None, "")
        return UpResult(running, None)
    spawn.check_port(host, port)  # one line now, rather than mitmproxy's several later
    check_path(db)
    log = Path(f"{db}.proxy.log")
    say(f"starting the proxy on {host}:{port} (log: {log})")
    try:
        proc = spawn.start_proxy(["--db", db, "--quiet", *proxy_args], host, port, log)
    except spawn.SpawnError as e:
        raise spawn.SpawnError(_why_it_failed(log, str(e))) from e
    try:
        open_db(db).close()  # the browser reads it at once, perhaps before the proxy's recorder made it
        browse(proc, str(log))
    finally:
        code = spawn.stop_proxy(proc)
        clean = code in (0, -signal.SIGINT)
        say(f"proxy stopped; recorded into {db}" if clean else f"proxy ended with exit code {code}; see {log}")
    return UpResult(None, code)


def _why_it_failed(log: Path, fallback: str) -> str:
    """The proxy's own one-line error, with its log removed (it said nothing more); otherwise
    the first line of what went wrong, and the log kept for the rest."""
    lines = [line for line in spawn.tail(log).splitlines() if line.strip()]
    if len(lines) == 1 and lines[0].startswith(ERROR_PREFIX):
        log.unlink(missing_ok=True)
        return f"the proxy did not start: {lines[0].removeprefix(ERROR_PREFIX)}"
    return f"{fallback.splitlines()[0]} (see {log})"
