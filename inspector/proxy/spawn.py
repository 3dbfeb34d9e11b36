"""The proxy in a process of its own: started, waited for, and stopped like Ctrl+C would.

The demo and `up` both run it this way, so the proxy keeps recording whatever the
browser does, and a crash in one never takes the other down.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from inspector.utils import files

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class SpawnError(Exception):
    pass


class PortInUse(OSError):
    pass


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str:
    return (
        f"listening on {host or 'every interface'}: anyone who can reach it can use this proxy and see "
        "your traffic (listen on 127.0.0.1 to keep it to this machine)"
    )


def check_port(host: str, port: int, what: str = "another proxy") -> None:
    """Fail before a server starts, with one clear line, if the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise PortInUse(f"{host}:{port} is already in use ({what}? pick another with --listen)") from e
            raise


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_listening(
    host: str, port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = STARTUP_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SpawnError(f"the proxy exited with {proc.returncode}:\n{tail(log)}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SpawnError(f"the proxy did not listen on {host}:{port} within {timeout:.0f}s:\n{tail(log)}")


def start_proxy(args: Sequence[str], host: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`xero-inspector proxy --listen host:port ARGS`, its output in ``log``; returns once it listens.

    Whatever happens before it listens (it fails, it is too slow, Ctrl+C) stops it again. The
    child also watches its parent (``--parent-pid``): if this process dies in a way no
    ``finally`` sees (SIGKILL, or an interrupt inside Popen itself), the proxy stops on its own.
    """
    cmd = [sys.executable, "-m", "inspector", "proxy", "--listen", f"{host}:{port}", "--parent-pid", str(os.getpid())]
    with files.fresh(log) as out:  # owner-only: the log names URLs, organisations, errors
        proc = subprocess.Popen(
            [*cmd, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # Ctrl+C in the browser's terminal is the browser's, not the proxy's
        )
    try:
        wait_listening(host, port, proc, log)
    except BaseException:
        stop_proxy(proc)
        raise
    return proc


def stop_proxy(proc: subprocess.Popen[bytes]) -> int:
    """SIGINT, like Ctrl+C: the recorder writes what is queued; then its exit code.

    A second Ctrl+C while it drains kills it (its writer process still stores what it holds).
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT)
        except (subprocess.TimeoutExpired, KeyboardInterrupt) as e:
            proc.kill()
            proc.wait()
            if isinstance(e, KeyboardInterrupt):
                raise
    return int(proc.returncode)
