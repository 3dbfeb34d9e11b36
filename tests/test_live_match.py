"""A live filter (a fault rule's) means what the same filter means in the browser: for calls
still on their way, ``LiveMatcher`` over ``Ingest.request_row`` picks exactly the calls the
browser's query picks once they are stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspector.ingest.catalog import Catalog
from inspector.ingest.pipeline import Ingest
from inspector.ingest.record import FlowRecord
from inspector.store.database import insert, open_db, open_for_reading
from inspector.store.live import LiveMatcher
from inspector.store.query import compile_filter

XPM = "https://api.xero.com/practicemanager/3.0"
TENANT = ("xero-tenant-id", "8f1d6c2e-6a71-4c1e-9a52-5b7c0d3e2a01")
XML = ("Content-Type", "text/xml")
CALLS = [
    ("POST", f"{XPM}/job.api/add", (TENANT, XML), b"<Job><Name>Audit 2026</Name><ClientID>1</ClientID></Job>"),
    ("PUT", f"{XPM}/job.api/update", (TENANT, XML), b"<Job><ID>J000001</ID><Name>Year end</Name></Job>"),
    ("GET", f"{XPM}/client.api/list", (TENANT,), None),
    ("GET", "https://api.xero.com/api.xro/2.0/Invoices?page=2", (TENANT, ("Accept", "application/json")), None),
    (
        "POST",
        "https://api.xero.com/api.xro/2.0/Contacts",
        (TENANT, ("Content-Type", "application/json")),
        b'{"Name": "Audit"}',
    ),
    ("GET", "https://api.xero.com/connections", (), None),
]
FILTERS = [
    "~api xpm",
    "~m POST",
    "~res job.api",
    "~op add",
    "job.api/add",
    "~d api.xero.com",
    "~bq Audit",
    "~b Name",
    "~hq tenant",
    "~t xml",
    "~tenant 8f1d6c2e",
    "!~m GET",
    "~api accounting | ~res client.api",
    "~u /3.0/ & ~m PUT",
    "~q",
    "~c 200",
    "~v",
    "~u Invoices.*page",
]


@pytest.mark.parametrize("expr", FILTERS)
def test_a_live_filter_picks_what_the_browser_picks_once_stored(expr: str, tmp_path: Path) -> None:
    ingest = Ingest(Catalog.load())
    records = [FlowRecord(1_790_000_000.0 + i, m, u, "HTTP/1.1", h, b) for i, (m, u, h, b) in enumerate(CALLS)]
    db = open_db(tmp_path / "flows.db")
    ids = insert(db, [ingest(r) for r in records], 0.0)
    db.close()
    where = compile_filter(expr)
    with open_for_reading(tmp_path / "flows.db") as conn:
        stored = {r[0] for r in conn.execute(f"SELECT id FROM flows WHERE {where.sql}", where.params)}
    matcher = LiveMatcher()
    live = set()
    for flow_id, rec in zip(ids, records, strict=True):
        row, text = ingest.request_row(rec, matcher.reads_the_body([where]))
        if matcher.matches(row, [where], text) == [True]:
            live.add(flow_id)
    assert live == stored
    assert matcher.matches(ingest.request_row(records[0])[0], []) == []


def test_a_live_body_search_leaves_nothing_behind() -> None:
    ingest = Ingest(Catalog.load())
    matcher = LiveMatcher()
    audit = FlowRecord(0.0, *CALLS[0][:2], "HTTP/1.1", CALLS[0][2], CALLS[0][3])
    other = FlowRecord(0.0, *CALLS[1][:2], "HTTP/1.1", CALLS[1][2], CALLS[1][3])
    wheres = [compile_filter("~bq Audit")]
    for rec, found in ((audit, [True]), (other, [False])):  # the first body is gone before the second
        row, text = ingest.request_row(rec)
        assert matcher.matches(row, wheres, text) == found
    assert matcher.db.execute("SELECT count(*) FROM bodies").fetchone()[0] == 0
