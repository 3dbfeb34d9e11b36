"""The benchmarks run and print their figures (a smoke run: never a time asserted)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.e2e


def test_bench_proxy_smoke() -> None:
    cmd = [sys.executable, "tests/bench/bench_proxy.py", "--requests", "40", "--concurrency", "4", "--rounds", "1"]
    cmd += ["--paced-rate", "50", "--paced-requests", "20"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for variant in ("bare mitmdump", "mitmdump + recorder", "recorder, no validation"):
        assert re.search(
            rf"{re.escape(variant)}\s+\d+ req/s\s+p50\s+[\d.]+ ms\s+p99\s+[\d.]+ ms\s+proxy CPU\s+\d+ us/request"
            r"\s+machine idle\s+[\d.]+%",
            out,
        )
    assert len(re.findall(r"stored\s+[\d.]+ s after", out)) == 2  # the two recorders
    assert re.search(r"throughput ratio \(recorder / bare\): \d\.\d{3}", out)
    assert re.search(r"validation on / off: throughput ratio \d\.\d{3}, CPU [+-]\d+ us/request", out)
    sent = re.search(r"flows recorded: (\d+) of (\d+)", out)
    assert sent and sent.group(1) == sent.group(2) != "0"
    assert re.search(r"latency added at that rate: p50 [+-][\d.]+ ms, p99 [+-][\d.]+ ms", out)


def test_bench_validate_smoke() -> None:
    cmd = [sys.executable, "tests/bench/bench_validate.py", "--repeat", "3"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "XPM detailed client list (response schema xpm-3.0/response.xsd)" in out
    assert "Accounting PUT Invoices (request schema accounting-2.0/requests.xsd)" in out
    for label in ("2 KB", "200 KB"):
        assert len(re.findall(rf"{label}\s+\d+ bytes\s+parse\s+\d+ us\s+parse\+validate\s+\d+ us", out)) == 2


def test_bench_tui_smoke() -> None:
    cmd = [sys.executable, "tests/bench/bench_tui.py", "--flows", "1500", "--baseline", "200", "--mitm-flows", "50"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"built 1,500 flows in \d+ s", out)
    assert re.search(r"first paint \(newest rows\) ms\s+[\d.]+\s+[\d.]+", out)
    assert re.search(r"page down \(median of 20\) ms\s+[\d.]+\s+[\d.]+", out)
    # the filter found what the generator planted: 1,500 flows hold 115 rate-limited ones
    assert re.search(r"filter '~c 429': rows shown ms\s+[\d.]+\s+[\d.]+\s+\(115 match\)", out)
    assert re.search(r"filter '~c 429': counted ms\s+[\d.]+\s+[\d.]+", out)
    assert re.search(r"resident memory MiB\s+[\d.]+\s+[\d.]+", out)
    assert re.search(r"mitmproxy [\d.]+ loading 50 flows \(\d+ MiB flow file\) into its flow list: [\d,]+ ms", out)


def test_bench_ingest_smoke() -> None:
    cmd = [sys.executable, "tests/bench/bench_ingest.py", "--flows", "400", "--rounds", "1"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for variant in ("ingest + insert, validation on", "ingest + insert, no validation", "raw executemany (same rows)"):
        assert re.search(rf"{re.escape(variant)}\s+[\d,]+ flows/s", out)
    assert re.search(r"validated ingest / raw: \d\.\d{3}", out)
    sizes = re.findall(r"([\d,]+) flows\s+([\d,]+) bytes/flow on disk\s+([\d,]+) body bytes/flow", out)
    assert [n for n, _, _ in sizes] == ["100", "200", "400"]
