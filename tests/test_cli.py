from __future__ import annotations

import socket
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from inspector.cli import main, parse_listen
from inspector.proxy.spawn import free_port


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


@pytest.mark.parametrize("command", list(main.commands))  # type: ignore[attr-defined]
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "Example: xero-inspector " + command in result.output


def test_every_option_says_what_it_is_for() -> None:
    for name, command in main.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"{name} {param.opts[0]} has no help"


def test_no_arguments_prints_the_usage_and_the_commands_whole() -> None:
    result = run_cli()
    assert result.returncode == 2 and result.stderr == ""
    assert result.stdout.startswith("Usage: xero-inspector [OPTIONS] COMMAND") and "error" not in result.stdout
    listed = result.stdout.split("Commands:\n", 1)[1].splitlines()
    assert {line.split()[0] for line in listed if line.strip()} == set(main.commands)  # type: ignore[attr-defined]
    assert not any(line.rstrip().endswith("...") for line in listed), listed


def test_mock_on_a_taken_port_names_the_address_and_the_flag() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        one_line_error(run_cli("mock", "--listen", f"127.0.0.1:{port}"), f"127.0.0.1:{port} is already in use")
        assert "--listen" in run_cli("mock", "--listen", f"127.0.0.1:{port}").stderr


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "xero-inspector" in result.output


def test_ca_creates_the_ca_and_says_how_to_trust_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ca", "--confdir", str(tmp_path), "--proxy", "http://127.0.0.1:9090"])
    assert result.exit_code == 0, result.output
    cert = tmp_path / "mitmproxy-ca-cert.pem"
    bundle = tmp_path / "xero-inspector-ca-bundle.pem"
    assert cert.exists() and bundle.exists()
    assert cert.read_text() in bundle.read_text() and bundle.read_text().count("BEGIN CERTIFICATE") > 10
    assert stat.S_IMODE((tmp_path / "mitmproxy-ca.pem").stat().st_mode) == 0o600  # the private key
    out = result.output
    for needle in (
        "REQUESTS_CA_BUNDLE=",
        "SSL_CERT_FILE=",
        "configuration.ssl_ca_cert",
        "configuration.proxy",
        "curl --proxy http://127.0.0.1:9090",
        "update-ca-certificates",
        "HTTPS_PROXY=http://127.0.0.1:9090",
        "Bearer $XERO_ACCESS_TOKEN",  # the variable every other command uses
    ):
        assert needle in out, needle
    path_only = CliRunner().invoke(main, ["ca", "--confdir", str(tmp_path), "--path"])
    assert path_only.output.strip() == str(cert)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        (":9000", ("127.0.0.1", 9000)),
        ("9001", ("127.0.0.1", 9001)),
        ("[::1]:8080", ("::1", 8080)),
        ("0.0.0.0", ("0.0.0.0", 8080)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value, 8080) == expected


def one_line_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("xero-inspector: error: ") and needle in lines[0], lines[0]


def test_proxy_refuses_a_database_that_is_not_ours(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(b"hello" * 1000)
    one_line_error(run_cli("proxy", "--db", str(other), "--listen", f"127.0.0.1:{free_port()}"), "other.db")


def test_proxy_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        one_line_error(
            run_cli("proxy", "--db", str(tmp_path / "f.db"), "--listen", f"127.0.0.1:{port}"), "already in use"
        )


def test_proxy_refuses_a_broken_catalog(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[family]]\nid = 'x'\n")
    one_line_error(run_cli("proxy", "--db", str(tmp_path / "f.db"), "--catalog", str(bad)), "bad.toml")


def test_proxy_bad_mode_is_one_line(tmp_path: Path, confdir: Path) -> None:
    result = run_cli(
        "proxy",
        "--db",
        str(tmp_path / "f.db"),
        "--confdir",
        str(confdir),
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--mode",
        "sideways",
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "sideways" in result.stderr


def test_usage_errors_are_one_line_too(tmp_path: Path) -> None:
    one_line_error(run_cli("proxy", "--listen", "nope:port:x"), "HOST:PORT")
    one_line_error(run_cli("proxy", "--frobnicate"), "--frobnicate")
    one_line_error(run_cli("teleport"), "teleport")


def test_tui_on_a_missing_or_foreign_file_is_one_line(tmp_path: Path) -> None:
    one_line_error(run_cli("tui", "--db", str(tmp_path / "nope.db")), "no such database")
    other = tmp_path / "notes.txt"
    other.write_text("not a database")
    one_line_error(run_cli("tui", "--db", str(other)), "not a xero-inspector database")
