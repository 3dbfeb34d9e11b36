"""The browser on a big recording: time to the first painted list, filter times, jumps and
resident memory, on N flows (1,000,000 by default) beside the same on 1,000 flows (the baseline),
in one run.

    python tests/bench/bench_tui.py [--flows 1000000] [--db big.db]

The database is built through the real store: 793 exchanges (13 kinds x 61 rate-limit
states) go through the real ingest with validation, then their rows are inserted again and
again with fresh times by ``store.insert``, bodies, findings and full-text index included.
An existing --db with enough flows is reused. The app runs headless (Textual's run_test); a
time is taken when the frame that shows the result is composed (every visible line drawn).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from inspector.samples.traffic import Traffic

from inspector.ingest.catalog import Catalog
from inspector.ingest.pipeline import Ingest, Ingested
from inspector.ingest.validate import SchemaCache, Validator
from inspector.store.database import insert, open_db
from inspector.tui.app import InspectorApp

KINDS = 13 * 61
NO_FRAME_S = 2.0  # Textual composes a changed screen within a frame (1/60 s); this is far past it
BATCH = 5000
FILTERS = (
    "~api xpm & ~c 400",
    "~v",
    "~bq ClientId",
    "~c 429",
    "~api accounting & ~v",
    "~tenant Company & ~err",
    "~v unknown-element",
    "job.api",
)


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
                ended = k.flow.ended_at + shift if k.flow.ended_at is not None else None
                flow = dataclasses.replace(k.flow, started_at=k.flow.started_at + shift, ended_at=ended)
                batch.append(dataclasses.replace(k, flow=flow))
            insert(db, batch, time.time())
            i += len(batch)
            if i % 100_000 == 0:
                print(f"  built {i:,} flows", file=sys.stderr, flush=True)
        return time.perf_counter() - t0


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class Frames:
    """When the app last composed a frame for the terminal. Textual hands every screen update
    to ``App._display``; headless it stops short of writing the escape codes, after the
    compositor has laid out the screen and drawn every visible line (our rows included)."""

    def __init__(self, app: InspectorApp) -> None:
        self.last = 0.0
        display = app._display

        def timed(screen, renderable):  # type: ignore[no-untyped-def]
            display(screen, renderable)
            if renderable is not None:
                self.last = time.perf_counter()

        app._display = timed  # type: ignore[method-assign]

    async def painted(self, condition: Callable[[], bool], timeout: float = 600) -> float:
        """Wait until ``condition`` holds, then for the frame that shows it; return that frame's time."""
        deadline = time.perf_counter() + timeout
        while not condition():
            if time.perf_counter() > deadline:
                raise TimeoutError("the browser never got there")
            await asyncio.sleep(0.001)
        seen = time.perf_counter()
        while self.last < seen:
            if time.perf_counter() > seen + NO_FRAME_S:  # nothing changed on screen: shown already
                return seen
            await asyncio.sleep(0.001)
        return self.last


async def measure(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    app = InspectorApp(path)
    async with app.run_test(size=(160, 45)):
        frames = Frames(app)
        flows = app.flows

        def cursor_row() -> bool:
            return flows.row_at(flows.cursor) is not None

        t = await frames.painted(lambda: flows.total > 0 and cursor_row())
        out["first paint (newest rows) ms"] = (t - t0) * 1000
        t = await frames.painted(lambda: flows.counted and flows.total > 0)
        out["all flows counted ms"] = (t - t0) * 1000
        for action, label in ((flows.action_first, "jump to the oldest"), (flows.action_last, "jump to the newest")):
            t = time.perf_counter()
            action()
            out[f"{label} ms"] = (await frames.painted(cursor_row) - t) * 1000
        t = time.perf_counter()
        flows.move_to(flows.total // 2)
        out["jump to the middle ms"] = (await frames.painted(cursor_row) - t) * 1000
        pages = []
        for _ in range(20):
            t = time.perf_counter()
            flows.action_move_page(1)
            pages.append((await frames.painted(cursor_row) - t) * 1000)
        out["page down (median of 20) ms"] = statistics.median(pages)
        out["page down (worst of 20) ms"] = max(pages)
        for expr in FILTERS:
            flows.action_last()  # the list at its newest, as after opening
            await frames.painted(lambda: flows.total == 0 or cursor_row())
            t = time.perf_counter()
            app.set_filter(expr)
            shown = await frames.painted(
                lambda e=expr: flows.flow_query.expr == e and (flows.total == 0 or cursor_row())  # type: ignore[misc]
            )
            counted = await frames.painted(lambda e=expr: flows.flow_query.expr == e and flows.counted)  # type: ignore[misc]
            out[f"filter {expr!r}: rows shown ms ({flows.total:,} match)"] = (shown - t) * 1000
            out[f"filter {expr!r}: counted ms"] = (counted - t) * 1000
        app.set_filter("")
        await frames.painted(lambda: flows.flow_query.expr == "" and flows.counted and flows.selected is not None)
        out["resident memory MiB"] = rss_mib()
    return out


def mitm_file(db: Path, count: int, path: Path) -> float:
    """The newest ``count`` flows of ``db`` as a mitmproxy flow file (our export, mitmproxy's
    FlowWriter); seconds it took, 0 when ``path`` already holds it."""
    if path.exists():
        return 0.0
    from inspector.commands.export import write_file
    from inspector.store.database import open_for_reading as connect

    t0 = time.perf_counter()
    with connect(db) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM flows ORDER BY id DESC LIMIT ?", (count,))][::-1]
        write_file(conn, "mitm", ids, path)
    return time.perf_counter() - t0


LOAD_MITM = """
import json, resource, sys, time
t0 = time.perf_counter()
from mitmproxy import io
from mitmproxy.addons.view import View
view = View()
with open(sys.argv[1], "rb") as f:
    flows = list(io.FlowReader(f).stream())
view.add(flows)
took = time.perf_counter() - t0
print(json.dumps({"flows": len(view), "seconds": took, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def load_in_mitmproxy(path: Path) -> dict[str, float]:
    """mitmproxy's own way in: its FlowReader, then its View (the flow list of mitmproxy and
    mitmweb), in a fresh process so its memory is its own."""
    out = subprocess.run([sys.executable, "-c", LOAD_MITM, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--baseline", type=int, default=1_000)
    ap.add_argument("--db", type=Path, help="Where to keep the big database (reused when big enough).")
    ap.add_argument(
        "--mitm-flows", type=int, default=100_000, help="Flows in the file mitmproxy loads beside it (0: skip)."
    )
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
        mitm = None
        if args.mitm_flows:
            path = big.with_name(f"{big.name}.{args.mitm_flows}.mitm")
            took = mitm_file(big, args.mitm_flows, path)
            if took:
                print(f"exported {args.mitm_flows:,} flows to {path.name} in {took:.0f} s")
            mitm = load_in_mitmproxy(path) | {"bytes": path.stat().st_size}
    width = max(len(k) for k in [*base, *result]) + 2
    print(f"{'':<{width}}{args.baseline:>12,} {args.flows:>14,}")
    keys = list(dict.fromkeys(k.split(" ms (")[0] for k in [*base, *result]))
    for key in keys:
        b = next((v for k, v in base.items() if k.split(" ms (")[0] == key), float("nan"))
        r = next((v for k, v in result.items() if k.split(" ms (")[0] == key), float("nan"))
        matches = next((k.split(" ms ")[1] for k in result if k.startswith(key + " ms (")), "")
        label = key if key.endswith(("ms", "MiB")) else key + " ms"
        print(f"{label:<{width}}{b:>12.1f} {r:>14.1f}  {matches}")
    if mitm:
        print(
            f"beside it, mitmproxy {mitmproxy_version()} loading {mitm['flows']:,} flows "
            f"({mitm['bytes'] / 2**20:,.0f} MiB flow file) into its flow list: "
            f"{mitm['seconds'] * 1000:,.0f} ms, peak resident memory {mitm['peak_mib']:,.0f} MiB"
        )


def mitmproxy_version() -> str:
    from mitmproxy.version import VERSION

    return VERSION


if __name__ == "__main__":
    main()
