"""The README is the user's door: what it promises must hold."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from inspector.cli import main
from inspector.ingest.catalog import Catalog
from inspector.ingest.validate import Validator
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text("utf-8")
DEMO_LINE = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/xero-inspector demo --headless"
TEST_LINE = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.DOTALL)


def test_the_two_set_up_lines() -> None:
    lines = README.splitlines()
    assert DEMO_LINE in lines and TEST_LINE in lines


def test_ci_runs_the_readmes_demo_and_test_lines() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    patterns = re.findall(r'grep -E "(.*?)" README\.md', ci)
    assert len(patterns) == 2, "the CI script takes its demo and test lines from the README"
    chosen = [next(line for line in README.splitlines() if re.search(p, line)) for p in patterns]
    assert chosen == [DEMO_LINE, TEST_LINE]


def test_the_readme_names_the_pythons_ci_tests() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    pythons = re.search(r"^PYTHONS=\((.*?)\)", ci, re.MULTILINE)
    assert pythons
    tested = pythons.group(1).split()
    assert f"Tested on Python {', '.join(tested[:-1])} and {tested[-1]}" in README


def test_every_command_is_in_the_readme() -> None:
    for name in main.commands:  # type: ignore[attr-defined]
        assert f"xero-inspector {name}" in README, name


def test_the_readme_faults_file_loads(tmp_path: Path) -> None:
    from inspector.proxy.fault_rules import load_file

    (example,) = [b for b in code_blocks("toml") if b.startswith("faults =")]
    path = tmp_path / "faults.toml"
    path.write_text(example)
    assert [r.describe() for r in load_file(path)] == [
        "token-expired ~api xpm every 10",
        "wrong-tenant ~res client.api times 1",
    ]


def test_the_readme_catalog_example_loads_and_checks_bodies(tmp_path: Path) -> None:
    (example,) = [b for b in code_blocks("toml") if not b.startswith("faults =")]
    (xsd,) = code_blocks("xml")
    path = tmp_path / "my.toml"
    path.write_text(example)
    (tmp_path / "widget.xsd").write_text(xsd)
    catalog = Catalog.load([path])
    c = catalog.classify("POST", "xpm.gateway.example", "/practicemanager/3.0/job.api/widgets")
    assert (c.family, c.operation) == ("xpm-3.0", "add-widget")
    validator = Validator()
    assert validator.check(b"<Widget><Name>W</Name></Widget>", c.request_schema, "request").findings == []
    typo, missing = validator.check(b"<Widget><Nam>W</Nam></Widget>", c.request_schema, "request").findings
    assert typo.rule == "unknown-element" and typo.hint and "<Name>" in typo.hint
    assert (missing.rule, missing.message) == ("xsd", "<Widget> is missing required <Name>")


def test_every_package_directory_is_packaged() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {"inspector": ROOT / "inspector", "inspector.samples": ROOT / "samples"}
    expected = set()
    for package, base in dirs.items():
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            expected.add(".".join((package, *rel)))
    assert set(config["packages"]) == expected


def test_the_readme_validate_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    """The commands as pasted, the output as shown (stdout, then the summary line on stderr)."""
    (commands,) = [b for b in code_blocks("bash") if "printf '<Job>" in b]
    shown = README.split(commands, 1)[1].split("```\n")[2]  # the block after the commands
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        ["bash", "-c", commands],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    assert result.returncode == 1  # errors found
    assert result.stdout + result.stderr == shown


def test_the_readme_per_exchange_line_is_the_proxys() -> None:
    """The line the README shows is what the proxy prints for that exchange (timestamp aside)."""
    from inspector.ingest.pipeline import Ingest
    from inspector.ingest.validate import Validator
    from inspector.proxy.writer import flow_line
    from tests.test_ingest import record

    (shown,) = [line for line in README.splitlines() if re.match(r"^\[\d\d:\d\d:\d\d\.\d{3}\] #\d+ ", line)]
    stamp, flow_id = shown.split("] ", 1)[0] + "] ", int(shown.split("#", 1)[1].split()[0])
    job = b"<Job><Name>A</Name><ClientID>1</ClientID><StartDate>20240101</StartDate><DueDate>20240102</DueDate></Job>"
    row = Ingest(Catalog.load(), validator=Validator())(record(request_body=job)).flow
    assert stamp + flow_line(flow_id, row) == shown


def test_the_readmes_mcp_registration_starts_the_server_on_a_recording() -> None:
    (snippet,) = [json.loads(b) for b in code_blocks("json") if '"mcpServers"' in b]
    server = snippet["mcpServers"]["xero-inspector"]
    assert Path(server["command"]).name == "xero-inspector" and server["args"][:2] == ["mcp", "--db"]
    assert server["args"][0] in main.commands  # type: ignore[attr-defined]
