"""`up`: the proxy in a process of its own, and the browser on the same file.

A proxy already recording into that file is reused and left running; one started here
is stopped (like Ctrl+C, so it writes what is queued) when the browser closes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

from . import flows, spawn
from .store import open_db
from .tui.model import RecorderStatus, recorder_status

Browse = Callable[[Popen[bytes] | None, str], None]


@dataclass(frozen=True)
class UpResult:
    reused: RecorderStatus | None  # the recorder attached to, if one was running
    proxy_exit: int | None  # the exit code of the proxy started here


def running_recorder(db: str | Path) -> RecorderStatus | None:
    open_db(db).close()  # create and migrate, so the browser and the proxy agree on the schema
    with closing(flows.connect(db)) as conn:
        status = recorder_status(conn)
    return status if status is not None and status.live else None


Say = Callable[[str], None]


def up(db: str, host: str, port: int, proxy_args: Sequence[str], browse: Browse, say: Say) -> UpResult:
    """Run ``browse(proxy, log)`` with a proxy recording into ``db``."""
    running = running_recorder(db)
    if running is not None:
        say(f"a proxy is already recording into {db} on {running.listen}; attaching to it")
        browse(None, "")
        return UpResult(running, None)
    spawn.check_port(host, port)  # one line now, rather than mitmproxy's several later
    log = Path(f"{db}.proxy.log")
    say(f"starting the proxy on {host}:{port} (log: {log})")
    proc = spawn.start_proxy(["--db", db, "--quiet", *proxy_args], host, port, log)
    try:
        browse(proc, str(log))
    finally:
        code = spawn.stop_proxy(proc)
        say(f"proxy stopped ({code}); recorded into {db}")
    return UpResult(None, code)
