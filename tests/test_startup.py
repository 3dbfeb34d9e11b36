"""Starting and stopping as a user does: Ctrl+C at any moment of start-up leaves no proxy behind,
and a start that fails creates nothing (no database, no log) and names the flag that was wrong.

The interrupt is a real SIGINT sent to the command's process group, as a terminal sends Ctrl+C.
Every process the command starts carries a tag in its environment, so whatever it left running
(the proxy, the proxy's writer process) is found by reading /proc.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from inspector.proxy.spawn import free_port
from tests.helpers import ROOT, WAIT

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")

TAG = "XERO_INSPECTOR_TEST_TAG"
# How long a proxy that lost its parent inside Popen itself may take to notice: its start-up
# (imports, ~1-2 s on a loaded machine) and one look at its parent.
ORPHAN_GRACE = 20.0


def tagged(tag: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process carrying ``tag``."""
    found = []
    needle = f"{TAG}={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] == "Z":  # a zombie is not running
                    continue
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except OSError:
            continue
    return found


def left_behind(tag: str) -> list[tuple[int, str]]:
    deadline = time.monotonic() + ORPHAN_GRACE
    while (found := tagged(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def proxy_started(tag: str) -> bool:
    return any(" proxy " in cmd for _, cmd in tagged(tag))


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


Moment = Callable[[str], bool] | float  # seconds in, or a condition on the run's tag


def _as_a_foreground_job() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(args: list[str], cwd: Path, moment: Moment) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run ``xero-inspector ARGS`` and Ctrl+C it at ``moment``; what it printed, and its tag."""
    tag = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
        # ...with Ctrl+C in force, as in a terminal, even when pytest runs as a background job
        # (which a shell starts with SIGINT ignored, and every child inherits that).
        preexec_fn=_as_a_foreground_job,
        env={**os.environ, TAG: tag, "PYTHONPATH": str(ROOT)},
    )
    started = time.monotonic()
    while time.monotonic() - started < WAIT and proc.poll() is None:
        if moment(tag) if callable(moment) else time.monotonic() - started >= moment:
            break
        time.sleep(0.01)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=WAIT + 60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), tag


# Textual switches to the alternate screen first thing: after that the browser had started.
BROWSER_STARTED = "\x1b[?1049h"


def assert_nothing_left(result: subprocess.CompletedProcess[str], tag: str) -> None:
    assert left_behind(tag) == [], f"left running after {result.args}: {tagged(tag)}\n{result.stderr}"
    if result.returncode != 130:  # before click was in charge (Python still importing): nothing to say
        return
    assert "xero-inspector: interrupted" in result.stderr.splitlines(), result.stderr
    if BROWSER_STARTED not in result.stderr:
        # Interrupted before the browser: our one line, no traceback. (A SIGINT that lands while
        # Textual mounts its widgets makes Textual print its own traceback; in a terminal that
        # window is a few ms, since in raw mode Ctrl+C is a key, not a signal.)
        assert result.stderr.strip().splitlines()[-1] == "xero-inspector: interrupted", result.stderr
        assert "Traceback" not in result.stderr, result.stderr


def after_listening(port: int, delay: float) -> Callable[[str], bool]:
    since: list[float] = []

    def reached(_tag: str) -> bool:
        if not since and listening(port):
            since.append(time.monotonic())
        return bool(since) and time.monotonic() - since[0] >= delay

    return reached


def moments(port: int) -> dict[str, Moment]:
    """The moments of a start-up: fixed times under a second and a half, and the events between."""
    return {
        "0.3 s": 0.3,
        "0.6 s": 0.6,
        "0.9 s": 0.9,
        "1.3 s": 1.3,
        "proxy process started": proxy_started,
        "proxy listening": after_listening(port, 0.0),
        "a second after": after_listening(port, 1.0),  # the demo's traffic; up's browser
    }


@pytest.mark.parametrize("when", list(moments(0)))
def test_ctrl_c_while_the_demo_starts_leaves_no_proxy(tmp_path: Path, confdir: Path, when: str) -> None:
    port = free_port()
    args = ["demo", "--headless", "--confdir", str(confdir), "--port", str(port)]
    result, tag = interrupt(args, tmp_path, moments(port)[when])
    assert result.returncode != 0, result.stdout
    assert_nothing_left(result, tag)


@pytest.mark.parametrize("when", list(moments(0)))
def test_ctrl_c_while_up_starts_leaves_no_proxy(tmp_path: Path, confdir: Path, when: str) -> None:
    port = free_port()
    args = ["up", "--db", "up.db", "--listen", f"127.0.0.1:{port}", "--confdir", str(confdir)]
    result, tag = interrupt(args, tmp_path, moments(port)[when])
    assert_nothing_left(result, tag)
    # A later `up` on that file finds no proxy to attach to: it starts its own.
    result, tag = interrupt(args, tmp_path, after_listening(port, 0.5))
    assert "attaching" not in result.stderr and "starting the proxy" in result.stderr, result.stderr
    assert_nothing_left(result, tag)


# --- a failed start creates nothing ----------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@contextmanager
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_proxy_with_a_missing_folder_names_db_and_creates_nothing(tmp_path: Path, confdir: Path) -> None:
    result = run_cli(
        "proxy",
        "--db",
        "/nonexistent/dir/x.db",
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--confdir",
        str(confdir),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "xero-inspector: error: --db: /nonexistent/dir/x.db: directory /nonexistent/dir does not exist"
    ]
    assert "inspector_db" not in result.stderr and list(tmp_path.iterdir()) == []


def test_up_on_a_taken_port_creates_nothing(tmp_path: Path, confdir: Path) -> None:
    with taken_port() as port:
        result = run_cli(
            "up", "--db", "up.db", "--listen", f"127.0.0.1:{port}", "--confdir", str(confdir), cwd=tmp_path
        )
    assert result.returncode == 2 and "already in use" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_up_whose_proxy_refuses_to_start_says_why_and_creates_nothing(tmp_path: Path, confdir: Path) -> None:
    result = run_cli(
        "up",
        "--db",
        "up.db",
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--confdir",
        str(confdir),
        "--redirect",
        "ftp://nowhere",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "xero-inspector: error: the proxy did not start: --redirect: 'ftp://nowhere' is not an http(s) URL with a host"
    )
    assert list(tmp_path.iterdir()) == []  # no up.db, -wal, -shm, nor its log


def test_mitmdump_that_fails_to_start_creates_nothing(tmp_path: Path, confdir: Path) -> None:
    mitmdump = Path(sys.executable).with_name("mitmdump")
    script = str(ROOT / "addons" / "xero_inspector.py")
    with taken_port() as port:
        result = subprocess.run(
            [str(mitmdump), "-s", script, "--listen-host", "127.0.0.1", "-p", str(port), "--set", f"confdir={confdir}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode != 0 and "address already in use" in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []
