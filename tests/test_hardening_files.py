"""Hardening: every file we write is written one way. Under a permissive umask (022), each output
is owner-only when it can hold request data (0600; a curl script 0700), and a symlink planted at
the target is replaced, never followed: the file it points at is left exactly as it was."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from inspector.samples.mock_xero.tls import make_certificates

from inspector.proxy.ca import BUNDLE_NAME
from inspector.proxy.spawn import free_port, start_proxy, stop_proxy
from inspector.utils import files
from tests.hostile import recording

pytestmark = pytest.mark.hardening

VICTIM = b"someone else's file\n"


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default, under which open() makes 0644 files
    yield
    os.umask(old)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return recording(tmp_path_factory.mktemp("files"))


def planted(target: Path) -> Path:
    """A symlink at ``target`` pointing at a file the user can write but must not lose."""
    victim = target.with_name(target.name + ".victim")
    victim.write_bytes(VICTIM)
    target.symlink_to(victim)
    return victim


def assert_written(target: Path, victim: Path, mode: int) -> None:
    info = target.lstat()
    assert stat.S_ISREG(info.st_mode), f"{target.name} is still a link"
    assert stat.S_IMODE(info.st_mode) == mode, f"{target.name} is {oct(stat.S_IMODE(info.st_mode))}"
    assert victim.read_bytes() == VICTIM, f"{target.name} wrote through the link"
    assert [p.name for p in target.parent.glob(".*.part")] == []  # no temporary file left


def cli(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "inspector", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("fmt", ["text", "markdown", "json", "junit", "html"])
def test_report_output(db: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"report.{fmt}"
    victim = planted(target)
    cli("report", "--db", str(db), "--format", fmt, "-o", str(target))
    assert_written(target, victim, 0o600)


@pytest.mark.parametrize(("fmt", "mode"), [("har", 0o600), ("mitm", 0o600), ("curl", 0o700)])
@pytest.mark.parametrize("keep", [False, True])
def test_export_output(db: Path, tmp_path: Path, fmt: str, mode: int, keep: bool) -> None:
    target = tmp_path / f"export.{fmt}"
    victim = planted(target)
    cli("export", "--db", str(db), "--format", fmt, "-o", str(target), *(["--keep-secrets"] if keep else []))
    assert_written(target, victim, mode)
    assert target.stat().st_size > 100


def test_the_proxy_log_of_up_and_demo(tmp_path: Path, confdir: Path) -> None:
    log = tmp_path / "flows.db.proxy.log"
    victim = planted(log)
    port = free_port()
    proc = start_proxy(["--db", str(tmp_path / "flows.db"), "--confdir", str(confdir)], "127.0.0.1", port, log)
    stop_proxy(proc)
    assert_written(log, victim, 0o600)
    assert b"127.0.0.1" in log.read_bytes()  # the proxy did write its log there


def test_the_ca_bundle_and_the_mock_certificates(tmp_path: Path) -> None:
    confdir = tmp_path / "conf"
    confdir.mkdir()
    bundle = confdir / BUNDLE_NAME
    victim = planted(bundle)
    cli("ca", "--confdir", str(confdir))
    assert_written(bundle, victim, 0o644)  # public certificates: other users' clients read it
    certs = tmp_path / "certs"
    certs.mkdir()
    victims = {name: planted(certs / name) for name in ("mock-xero-ca.pem", "mock-xero.pem", "mock-xero.key")}
    make_certificates(certs)
    assert_written(certs / "mock-xero.key", victims["mock-xero.key"], 0o600)
    assert_written(certs / "mock-xero.pem", victims["mock-xero.pem"], 0o644)


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "report.xml"
    target.write_bytes(b"the last good report")
    with pytest.raises(RuntimeError), files.replacing(target) as out:
        out.write(b"half a rep")
        raise RuntimeError("disk full, say")
    assert target.read_bytes() == b"the last good report"
    assert list(tmp_path.glob(".*.part")) == []
