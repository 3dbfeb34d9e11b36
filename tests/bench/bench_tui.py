"""The browser on a big recording: time to the first painted list, filter times, jumps and
resident memory, on N flows (1,000,000 by default) beside the same on 1,000 flows (the baseline),
in one run.

    python tests/bench/bench_tui.py [--flows 1000000] [--db big.db]

The database is built through the real store: 793 exchanges (13 kinds x 61 rate-limit
states) go through the real ingest with validation, then their rows are inserted again and
again with fresh times by ``store.insert``, bodies, findings and full-text index included.
An existing --db with enough flows is reused. The app runs headless (Textual's Pilot), which
renders every frame as a terminal would.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from inspector.samples.traffic import Traffic

from inspector.catalog import Catalog
from inspector.ingest import Ingest, Ingested
from inspector.store import insert, open_db
from inspector.tui.app import InspectorApp
from inspector.validate import SchemaCache, Validator

KINDS = 13 * 61
BATCH = 5000
FILTERS = ("~c 429", "~api accounting & ~v", "~tenant Company & ~err", "~v unknown-element", "~bq ClientId", "job.api")


def build(path: Path, count: int) -> float:
    """Seconds it took; skips the work when the file already holds ``count`` flows."""
    with open_db(path) as db:
        have = db.table("flows").count
        if have >= count:
            return 0.0
        t0 = time.perf_counter()
        ingest = Ingest(Catalog.load(), validator=Validator(SchemaCache()))
        traffic = Traffic(start=1_790_000_000.0, step=0.1)
        kinds = [ingest(r) for r in traffic.records(KINDS)]
        i = have
        while i < count:
            batch: list[Ingested] = []
            for j in range(i, min(count, i + BATCH)):
                k = kinds[j % KINDS]
                shift = (j - j % KINDS) * traffic.step
                flow = {**k.flow, "started_at": k.flow["started_at"] + shift}
                if flow.get("ended_at") is not None:
                    flow["ended_at"] += shift
                batch.append(dataclasses.replace(k, flow=flow))
            insert(db, batch, time.time())
            i += len(batch)
            if i % 100_000 == 0:
                print(f"  built {i:,} flows", file=sys.stderr, flush=True)
        return time.perf_counter() - t0


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


async def wait(pilot, condition: Callable[[], bool], timeout: float = 600) -> None:  # type: ignore[no-untyped-def]
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the browser never got there")
        await asyncio.sleep(0.002)
    await pilot.pause()  # one more frame: what was loaded is painted


async def measure(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    app = InspectorApp(path)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait(pilot, lambda: app.flows.total > 0 and app.flows.row_at(app.flows.cursor) is not None)
        out["first paint (newest rows) ms"] = (time.perf_counter() - t0) * 1000
        for key, label in (("home", "jump to the oldest"), ("end", "jump to the newest")):
            t = time.perf_counter()
            await pilot.press(key)
            await wait(pilot, lambda: app.flows.row_at(app.flows.cursor) is not None)
            out[f"{label} ms"] = (time.perf_counter() - t) * 1000
        app.flows.move_to(app.flows.total // 2)
        t = time.perf_counter()
        await wait(pilot, lambda: app.flows.row_at(app.flows.cursor) is not None)
        out["jump to the middle ms"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        for _ in range(20):
            await pilot.press("pagedown")
            await wait(pilot, lambda: app.flows.row_at(app.flows.cursor) is not None)
        out["page down (mean of 20) ms"] = (time.perf_counter() - t) * 1000 / 20
        for expr in FILTERS:
            t = time.perf_counter()
            app.set_filter(expr)
            await wait(pilot, lambda e=expr: app.flows.flow_query.expr == e)  # type: ignore[misc]
            await wait(pilot, lambda: app.flows.total == 0 or app.flows.row_at(app.flows.cursor) is not None)
            out[f"filter {expr!r} ms ({app.flows.total:,} match)"] = (time.perf_counter() - t) * 1000
        app.set_filter("")
        await wait(pilot, lambda: app.flows.flow_query.expr == "" and app.flows.selected is not None)
        out["resident memory MiB"] = rss_mib()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--baseline", type=int, default=1_000)
    ap.add_argument("--db", type=Path, help="Where to keep the big database (reused when big enough).")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tui-") as tmp:
        small = Path(tmp) / "small.db"
        big = args.db or Path(tmp) / "big.db"
        build(small, args.baseline)
        took = build(big, args.flows)
        if took:
            print(f"built {args.flows:,} flows in {took:.0f} s ({big.stat().st_size / 2**20:,.0f} MiB)")
        print(f"python {sys.version.split()[0]}; RSS before opening any browser: {rss_mib():.0f} MiB")
        base = asyncio.run(measure(small))
        result = asyncio.run(measure(big))
    width = max(len(k) for k in [*base, *result]) + 2
    print(f"{'':<{width}}{args.baseline:>12,} {args.flows:>14,}")
    keys = list(dict.fromkeys(k.split(" ms (")[0] for k in [*base, *result]))
    for key in keys:
        b = next((v for k, v in base.items() if k.split(" ms (")[0] == key), float("nan"))
        r = next((v for k, v in result.items() if k.split(" ms (")[0] == key), float("nan"))
        matches = next((k.split(" ms ")[1] for k in result if k.startswith(key + " ms (")), "")
        print(f"{key:<{width}}{b:>12.1f} {r:>14.1f}  {matches}")


if __name__ == "__main__":
    main()
