"""Proxy overhead: the same HTTPS workload through bare mitmdump and through mitmdump with the
recorder, in one run, alternating, so the machine's noise hits both alike.

    python tests/bench/bench_proxy.py [--requests 2000] [--concurrency 8] [--rounds 2]

The baseline reaches the mock with mitmproxy's own map_remote; ours with --redirect. Both
intercept TLS with the same CA. Prints throughput and latency per variant and the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from inspector.samples.mock_xero import TENANTS

from inspector.proxy.ca import ensure_ca
from inspector.proxy.spawn import free_port, wait_listening

ROOT = Path(__file__).resolve().parents[2]

URL = "https://api.xero.com/practicemanager/3.0/job.api/update"
DESCRIPTION = "Year-end accounts, GST returns and the owner's tax return; " * 30


def job_update_body() -> bytes:
    """An XPM job update of about 2 KB; the mock answers with the job, about as long."""
    return (
        "<Job><ID>J000001</ID><Name>Annual accounts 2024</Name>"
        f"<Description>{DESCRIPTION.strip()}</Description>"
        "<StartDate>20240401</StartDate><DueDate>20240630</DueDate></Job>"
    ).encode()


def start(cmd: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    wait_listening("127.0.0.1", port, proc, log)
    return proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process and its live children (the recorder's writer) have used
    so far (Linux /proc)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(cpu_seconds(int(c)) for c in children)


def machine_idle() -> tuple[float, float]:
    """(idle, total) jiffies of all cores so far."""
    cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return cpu[3] + cpu[4], sum(cpu[:8])


def stored(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("select count(*) from flows").fetchone()[0])
    except sqlite3.Error:
        return 0


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def load(
    proxy: str, ca: Path, headers: dict[str, str], body: bytes, requests: int, concurrency: int, rate: float = 0
) -> tuple[float, list[float]]:
    """Requests per second and every request's latency (ms), keep-alive clients in threads:
    as fast as they can, or ``rate`` requests a second in all, evenly spaced."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_worker = requests // concurrency
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        mine = []
        try:
            with httpx.Client(
                proxy=proxy, verify=ssl.create_default_context(cafile=str(ca)), trust_env=False, timeout=60
            ) as http:
                http.put(URL, headers=headers, content=body)  # warm the connection and the TLS session
                start = time.perf_counter() + 0.1
                for k in range(per_worker):
                    if rate:
                        time.sleep(max(0.0, start + (k * concurrency + index) / rate - time.perf_counter()))
                    t0 = time.perf_counter()
                    resp = http.put(URL, headers=headers, content=body)
                    mine.append((time.perf_counter() - t0) * 1000)
                    if resp.status_code != 200:
                        raise RuntimeError(f"status {resp.status_code}")
        except BaseException as e:  # surfaced below: a benchmark that failed must not print figures
            errors.append(e)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"load failed: {errors[0]!r}")
    return len(latencies) / elapsed, latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--paced-rate", type=float, default=100, help="Then the same clients at this many requests/s in all (0: skip)."
    )
    ap.add_argument("--paced-requests", type=int, default=500)
    ap.add_argument(
        "--fault",
        metavar="RULE",
        help="Also run the recorder with this fault rule; one that matches none of the workload "
        "(e.g. 'rate-limit ~res lead.api') shows what a rule costs the calls it leaves alone.",
    )
    ap.add_argument(
        "--break",
        dest="breakpoint",
        metavar="EXPR",
        help="Also run the recorder with this breakpoint; one that matches none of the workload "
        "(e.g. '~res lead.api') shows what a breakpoint costs the calls it leaves alone.",
    )
    args = ap.parse_args()

    bindir = Path(sys.executable).parent
    mitmdump = shutil.which("mitmdump", path=str(bindir)) or "mitmdump"
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmpdir:
        tmp = Path(tmpdir)
        confdir = tmp / "conf"
        ca = ensure_ca(confdir)
        mock_port = free_port()
        mock = start(
            [
                sys.executable,
                "-m",
                "inspector",
                "mock",
                "--listen",
                f"127.0.0.1:{mock_port}",
                "--minute-limit",
                "100000000",
                "--day-limit",
                "100000000",
                "--app-minute-limit",
                "100000000",
                "--cert-dir",
                str(tmp / "mock"),
            ],
            mock_port,
            tmp / "mock.log",
        )
        try:
            mock_ca = tmp / "mock" / "mock-xero-ca.pem"
            body = job_update_body()
            token, size = probe(mock_port, mock_ca, body)
            headers = {
                "Authorization": f"Bearer {token}",
                "xero-tenant-id": TENANTS[0].id,
                "Content-Type": "application/xml",
            }
            common = [
                "-q",
                "--listen-host",
                "127.0.0.1",
                "--set",
                f"confdir={confdir}",
                "--set",
                f"ssl_verify_upstream_trusted_ca={mock_ca}",
                "--set",
                "connection_strategy=lazy",
                "--set",
                "upstream_cert=false",
            ]
            variants = {
                "bare mitmdump": [*common, "--map-remote", f"|//api.xero.com|//127.0.0.1:{mock_port}"],
                "mitmdump + recorder": [
                    *common,
                    *("-s", "addons/xero_inspector.py", "--set", f"inspector_redirect=https://127.0.0.1:{mock_port}"),
                ],
                # The same recorder with schema validation off: what validation itself costs.
                "recorder, no validation": [
                    *common,
                    *("-s", "addons/xero_inspector.py", "--set", f"inspector_redirect=https://127.0.0.1:{mock_port}"),
                    *("--set", "inspector_validate=false"),
                ],
            }
            if args.fault:
                variants["recorder + fault rule"] = [
                    *variants["mitmdump + recorder"],
                    "--set",
                    f"inspector_fault={args.fault}",
                ]
            if args.breakpoint:
                variants["recorder + breakpoint"] = [
                    *variants["mitmdump + recorder"],
                    "--set",
                    f"inspector_break={args.breakpoint}",
                ]
            results: dict[str, list[tuple[float, list[float]]]] = {name: [] for name in variants}
            cpu: dict[str, list[float]] = {name: [] for name in variants}
            idle: dict[str, list[float]] = {name: [] for name in variants}
            drain: dict[str, list[float]] = {name: [] for name in variants}
            paced: dict[str, list[float]] = {name: [] for name in variants}
            sent = args.requests // args.concurrency * args.concurrency + args.concurrency  # + the warm-ups
            recorded = 0
            for rnd in range(args.rounds):
                for name, extra in variants.items():
                    port = free_port()
                    db = tmp / f"bench-{rnd}-{port}.db"
                    cmd = [mitmdump, "--listen-port", str(port), *extra]
                    recording = name != "bare mitmdump"
                    if recording:
                        cmd += ["--set", f"inspector_db={db}"]
                    proc = start(cmd, port, tmp / f"{rnd}-{port}.log")
                    try:
                        before, (idle0, all0) = cpu_seconds(proc.pid), machine_idle()
                        results[name].append(
                            load(f"http://127.0.0.1:{port}", ca, headers, body, args.requests, args.concurrency)
                        )
                        idle1, all1 = machine_idle()
                        idle[name].append((idle1 - idle0) / max(1, all1 - all0) * 100)
                        # How long after the last answer the last exchange is in the file.
                        t0 = time.perf_counter()
                        while recording and stored(db) < sent and time.perf_counter() - t0 < 300:
                            time.sleep(0.02)
                        drain[name].append(time.perf_counter() - t0)
                        time.sleep(0.2)
                        # Includes the writer's drain: what the recorder costs per exchange, all told.
                        cpu[name].append((cpu_seconds(proc.pid) - before) / args.requests * 1e6)
                        if args.paced_rate:  # a load the machine keeps up with: latency without queueing
                            proxy_url = f"http://127.0.0.1:{port}"
                            run = load(
                                proxy_url, ca, headers, body, args.paced_requests, args.concurrency, args.paced_rate
                            )
                            paced[name].extend(run[1])
                    finally:
                        stop(proc)
                    if recording:
                        recorded += stored(db)
        finally:
            stop(mock)
    report(results, cpu, idle, drain, args, recorded, size)
    if args.paced_rate:
        report_paced(paced, args)
    return 0


def report_paced(paced: dict[str, list[float]], args: argparse.Namespace) -> None:
    print(f"paced: the same clients at {args.paced_rate:.0f} requests/s in all, {args.paced_requests} per round")
    for name, lats in paced.items():
        print(f"  {name:<24} p50 {pct(lats, 50):6.2f} ms   p99 {pct(lats, 99):6.2f} ms")
    base, ours = paced["bare mitmdump"], paced["mitmdump + recorder"]
    print(
        f"  latency added at that rate: p50 {pct(ours, 50) - pct(base, 50):+.2f} ms, p99 {pct(ours, 99) - pct(base, 99):+.2f} ms"
    )


def probe(mock_port: int, mock_ca: Path, job: bytes) -> tuple[str, int]:
    """A token from the mock, and the size of the answer the workload gets (asked directly)."""
    from inspector.samples.mock_xero import MockConfig

    c = MockConfig()
    base = f"https://127.0.0.1:{mock_port}"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(mock_ca))) as http:
        resp = http.post(
            f"{base}/connect/token", data={"grant_type": "client_credentials"}, auth=(c.client_id, c.client_secret)
        )
        token = str(resp.json()["access_token"])
        answer = http.put(
            base + URL.split("api.xero.com", 1)[1],
            headers={"Authorization": f"Bearer {token}", "xero-tenant-id": TENANTS[0].id},
            content=job,
        )
        if b"<Status>OK</Status>" not in answer.content:
            raise RuntimeError(f"the mock refused the workload's job update: {answer.text[:300]}")
    return token, len(answer.content)


def report(
    results: dict[str, list[tuple[float, list[float]]]],
    cpu: dict[str, list[float]],
    idle: dict[str, list[float]],
    drain: dict[str, list[float]],
    args: argparse.Namespace,
    recorded: int,
    size: int,
) -> None:
    print(
        f"proxy overhead: {args.requests} HTTPS requests x {args.rounds} rounds, concurrency {args.concurrency}, "
        f"XPM PUT job.api/update, {len(job_update_body())}-byte request, {size}-byte answer, mock on loopback, "
        f"{os.cpu_count()} cores"
    )
    summary = {}
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        lat = [x for _, lats in runs for x in lats]
        summary[name] = (rps, pct(lat, 50), pct(lat, 99))
        stored_after = f"   stored {statistics.median(drain[name]):5.2f} s after" if name != "bare mitmdump" else ""
        print(
            f"  {name:<24} {rps:8.0f} req/s   p50 {pct(lat, 50):6.2f} ms   p99 {pct(lat, 99):6.2f} ms   "
            f"proxy CPU {statistics.median(cpu[name]):5.0f} us/request   machine idle {statistics.median(idle[name]):4.1f}%"
            + stored_after
        )
    base_rps, base_p50, base_p99 = summary["bare mitmdump"]
    ours_rps, ours_p50, ours_p99 = summary["mitmdump + recorder"]
    off_rps = summary["recorder, no validation"][0]
    print(f"  throughput ratio (recorder / bare): {ours_rps / base_rps:.3f}")
    print(f"  latency added: p50 {ours_p50 - base_p50:+.2f} ms, p99 {ours_p99 - base_p99:+.2f} ms")
    print(
        f"  validation on / off: throughput ratio {ours_rps / off_rps:.3f}, "
        f"CPU {statistics.median(cpu['mitmdump + recorder']) - statistics.median(cpu['recorder, no validation']):+.0f} "
        "us/request"
    )
    for variant, what in (
        ("recorder + fault rule", f"fault rule {args.fault!r}"),
        ("recorder + breakpoint", f"breakpoint {args.breakpoint!r}"),
    ):
        if variant in summary:
            extra_cpu = statistics.median(cpu[variant]) - statistics.median(cpu["mitmdump + recorder"])
            print(
                f"  {what} / recorder: throughput ratio {summary[variant][0] / ours_rps:.3f}, "
                f"CPU {extra_cpu:+.0f} us/request"
            )
    per_run = args.requests // args.concurrency * args.concurrency + args.concurrency  # with the warm-ups
    if args.paced_rate:
        per_run += args.paced_requests // args.concurrency * args.concurrency + args.concurrency
    expected = (len(results) - 1) * args.rounds * per_run
    print(f"  flows recorded: {recorded} of {expected} sent through the recorders (paced runs included)")


if __name__ == "__main__":
    sys.exit(main())
