"""The browser's reads, without Textual: keyset pages agree with one plain query, counts
are bounded, organisations and the recorder are read back from a real store."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from inspector.samples.traffic import PRACTICE, Traffic, fill

from inspector.store import edits
from inspector.store.browse import FlowQuery, Reader, clock, recorder_status, tenant_stats
from inspector.store.database import open_db, open_for_reading, save_recorder
from inspector.store.query import FilterError


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "flows.db"
    with open_db(path) as db:
        fill(db, 390)
    return path


def all_ids(path: Path, where: str = "1") -> list[int]:
    with open_for_reading(path) as conn:
        return [r[0] for r in conn.execute(f"SELECT id FROM flows WHERE {where} ORDER BY id")]


@pytest.mark.parametrize("expr, where", [("", "1"), ("~v", "errors > 0 OR warnings > 0"), ("~c 400", "status = 400")])
def test_keyset_pages_walk_the_same_rows_as_one_query(store: Path, expr: str, where: str) -> None:
    q = FlowQuery(expr)
    expected = all_ids(store, where)
    with Reader(store).conn() as conn:
        assert q.count(conn, 0, 10**9) == len(expected)
        forward, page = [], q.at(conn, 0, 50)
        while page:
            forward += [r.id for r in page]
            page = q.after(conn, page[-1].id, 50)
        backward, page = [], q.last(conn, 50, 10**9)
        while page:
            backward = [r.id for r in page] + backward
            page = q.before(conn, page[0].id, 50)
        assert forward == backward == expected
        middle = len(expected) // 2
        assert [r.id for r in q.at(conn, middle, 5)] == expected[middle : middle + 5]
        assert q.index_of(conn, expected[middle]) == middle


def test_count_and_last_page_are_bounded_by_what_was_counted(store: Path) -> None:
    ids = all_ids(store)
    with Reader(store).conn() as conn:
        assert FlowQuery("").count(conn, ids[9], ids[19]) == 10
        assert [r.id for r in FlowQuery("").last(conn, 3, ids[19])] == ids[17:20]


def test_index_of_a_flow_the_filter_hides_is_none(store: Path) -> None:
    hidden = all_ids(store, "status = 200")[0]
    with Reader(store).conn() as conn:
        assert FlowQuery("~c 400").index_of(conn, hidden) is None


def test_a_bad_filter_raises_before_any_query() -> None:
    with pytest.raises(FilterError, match="~m needs a value"):
        FlowQuery("~m (")


def test_tenant_stats_count_windows_limits_and_429s(store: Path) -> None:
    with open_for_reading(store) as conn:
        now = clock(conn, live=False)
        stats = {s.tenant_id: s for s in tenant_stats(conn, now)}
        practice = stats[PRACTICE.id]
        expected_429 = conn.execute(
            "SELECT count(*) FROM flows WHERE tenant_id = ? AND status = 429", (PRACTICE.id,)
        ).fetchone()[0]
        last = conn.execute(
            "SELECT rl_minute_remaining FROM flows WHERE tenant_id = ? AND rl_minute_remaining IS NOT NULL "
            "ORDER BY started_at DESC LIMIT 1",
            (PRACTICE.id,),
        ).fetchone()[0]
    assert practice.name == "Demo Practice Ltd"
    assert practice.rate_limited == expected_429 > 0
    assert practice.minute_remaining == last == practice.minute_series[-1]
    # traffic is one call every 1.5 s: the minute before the last call holds at most 41 of them
    assert 0 < practice.calls_minute <= 41 and practice.calls_day == practice.calls


def test_recorder_status_live_only_while_its_process_runs(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    now = time.time()
    row = {"id": "r1", "pid": os.getpid(), "listen": "127.0.0.1:8080", "started_at": now, "updated_at": now}
    with open_db(path) as db:
        save_recorder(db, {**row, "recorded": 5, "dropped": 1})
    with open_for_reading(path) as conn:
        live = recorder_status(conn)
        assert live is not None and live.live and (live.recorded, live.dropped) == (5, 1)
        assert recorder_status(conn, now + 60) is not None and not recorder_status(conn, now + 60).live  # type: ignore[union-attr]
    with open_db(path) as db:
        save_recorder(db, {**row, "stopped_at": now})
    with open_for_reading(path) as conn:
        assert not recorder_status(conn).live  # type: ignore[union-attr]


def test_deleted_ids_are_never_handed_out_again(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    with open_db(path) as db:
        ids = fill(db, 5)
        conn = db.conn
        assert edits.delete_flows(conn, ids[-2:]) == 2
        assert conn.execute("SELECT count(*) FROM bodies WHERE flow_id IN (?, ?)", ids[-2:]).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM findings WHERE flow_id IN (?, ?)", ids[-2:]).fetchone()[0] == 0
        more = fill(db, 2, Traffic(start=1_790_001_000.0))
    assert min(more) > max(ids)


def test_marks_and_comments_are_filterable(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    with open_db(path) as db:
        ids = fill(db, 6)
        assert edits.set_marked(db.conn, ids[:2], True) == 2
        edits.set_comment(db.conn, [ids[3]], "  ClientID typo, see ticket 42 ")
        edits.set_comment(db.conn, [ids[4]], "")
    with Reader(path).conn() as conn:
        assert [r.id for r in FlowQuery("~marked").at(conn, 0, 10)] == ids[:2]
        rows = FlowQuery("~comment ticket").at(conn, 0, 10)
        assert [(r.id, r.comment) for r in rows] == [(ids[3], "ClientID typo, see ticket 42")]


@pytest.mark.parametrize(
    ("body", "fmt", "pretty"),
    [
        ("<Job><Name>A</Name></Job>", "xml", True),  # one line, however short
        ("<?xml version='1.0'?>\n<Job><Name>A</Name><ClientID>1</ClientID></Job>", "xml", True),
        ("<Job>\n  <Name>A</Name>\n  <ClientID>1</ClientID>\n</Job>\n", "xml", False),  # laid out already
        ("<Name>" + "x" * 300 + "</Name>", "xml", True),  # a line past LONG_LINE
        ('{"Invoices":[{"InvoiceID":"1","Total":2}]}', "json", True),
        ('{\n  "Total": 2\n}', "json", False),
        ("a=1&b=<x><y/></x>", "form", False),
    ],
)
def test_a_body_sent_minified_is_pretty_printed_whatever_its_length(body: str, fmt: str, pretty: bool) -> None:
    from inspector.tui.document import minified

    assert minified(body, fmt) is pretty
