"""Ingest throughput and storage: FlowRecords per second through classify + facts + validate +
rules + redact + insert (the writer's path, batches of 500), beside the limit on this machine:
the same rows, already ingested, written by executemany in one transaction. Then what the
store costs on disk per flow, against the raw bytes of the bodies, at growing sizes.

    python tests/bench/bench_ingest.py [--flows 20000] [--rounds 3]

Records come from the samples generator (13 kinds of exchange, XPM/Accounting XML and JSON, a
PDF, 429s, transport errors). Medians of --rounds, alternating the variants in one process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from inspector.samples.traffic import Traffic

from inspector.ingest.catalog import Catalog
from inspector.ingest.pipeline import Ingest, Ingested
from inspector.ingest.record import FlowRecord
from inspector.ingest.validate import Validator
from inspector.store.database import insert, insert_rows, open_db, write_transaction

BATCH = 500  # the writer's batch size


def fresh_db(tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    open_db(path).close()
    return path


def ingest_and_insert(path: Path, records: list[FlowRecord], ingest: Ingest) -> float:
    """The writer's work for ``records``: ingest each, insert per batch; seconds."""
    db = open_db(path)
    start = time.perf_counter()
    for i in range(0, len(records), BATCH):
        insert(db, [ingest(r) for r in records[i : i + BATCH]], time.time())
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def raw_insert(path: Path, rows: list[Ingested]) -> float:
    """The same rows, already ingested: executemany per table in one transaction; seconds."""
    db = open_db(path)
    start = time.perf_counter()
    with write_transaction(db):
        insert_rows(db, rows, time.time())
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def file_bytes(path: Path) -> int:
    """The database as it sits on disk, WAL checkpointed into it."""
    db = open_db(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return sum(Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists())


def body_bytes(records: list[FlowRecord]) -> int:
    return sum(r.body_bytes for r in records)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    catalog = Catalog.load()
    validator = Validator.for_catalog(catalog)
    records = list(Traffic().records(args.flows))
    rows = [Ingest(catalog, validator=validator)(r) for r in records]  # what raw_insert writes
    variants: dict[str, Callable[[Path], float]] = {
        "ingest + insert, validation on": lambda p: ingest_and_insert(p, records, Ingest(catalog, validator=validator)),
        "ingest + insert, no validation": lambda p: ingest_and_insert(p, records, Ingest(catalog)),
        "raw executemany (same rows)": lambda p: raw_insert(p, rows),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp_dir:
        tmp = Path(tmp_dir)
        for _ in range(args.rounds):
            for name, run in variants.items():
                times[name].append(run(fresh_db(tmp, "bench")))
        print(f"{args.flows:,} flows, median of {args.rounds} round(s), batches of {BATCH}:")
        rate = {name: args.flows / statistics.median(t) for name, t in times.items()}
        for name, r in rate.items():
            print(f"  {name:<32} {r:>9,.0f} flows/s")
        raw = rate["raw executemany (same rows)"]
        print(f"validated ingest / raw: {rate['ingest + insert, validation on'] / raw:.3f}")
        print(f"unvalidated ingest / raw: {rate['ingest + insert, no validation'] / raw:.3f}")

        print("storage (validation on), growing:")
        for n in (args.flows // 4, args.flows // 2, args.flows):
            path = fresh_db(tmp, f"size-{n}")
            ingest_and_insert(path, records[:n], Ingest(catalog, validator=validator))
            size, raw_bodies = file_bytes(path), body_bytes(records[:n])
            print(
                f"  {n:>9,} flows  {size / n:>7,.0f} bytes/flow on disk  "
                f"{raw_bodies / n:>7,.0f} body bytes/flow  ratio {size / raw_bodies:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
