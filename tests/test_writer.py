from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from inspector.ingest.catalog import Catalog
from inspector.ingest.pipeline import Ingest
from inspector.proxy.writer import RecordQueue, Writer
from tests.helpers import rows, wait_for_rows
from tests.test_ingest import record


def writer(path: Path, **kw) -> Writer:
    return Writer(path, Ingest(Catalog.load()), **kw)


def test_queue_is_bounded_by_items_and_by_bytes() -> None:
    q = RecordQueue(max_items=2, max_bytes=10_000)
    small = record(request_body=b"", response_body=b"")
    assert q.offer(small) and q.offer(small) and not q.offer(small)
    q = RecordQueue(max_items=100, max_bytes=1_000)
    assert not q.offer(record(request_body=b"x" * 2_000, response_body=b""))
    assert q.offer(record(request_body=b"x" * 500, response_body=b""))


def test_queue_take_batches_and_closes() -> None:
    q = RecordQueue(100, 10**9, batch_size=3)
    for _ in range(5):
        q.offer(record())
    assert len(q.take(0.01) or []) == 3 and len(q.take(0.01) or []) == 2
    assert q.take(0.01) == []
    q.close()
    assert q.take(0.01) is None and not q.offer(record())


def test_stop_writes_everything_queued(tmp_path: Path) -> None:
    w = writer(tmp_path / "f.db", batch_size=7)
    w.start()
    for _ in range(100):
        assert w.submit(record())
    w.stop()
    assert rows(tmp_path / "f.db", "select count(*) n from flows")[0]["n"] == 100
    (rec,) = rows(tmp_path / "f.db", "select recorded, dropped, errors, queue_depth, stopped_at from recorders")
    assert (rec["recorded"], rec["dropped"], rec["errors"], rec["queue_depth"]) == (100, 0, 0, 0) and rec["stopped_at"]


def test_overflow_drops_the_record_and_counts_it(tmp_path: Path) -> None:
    w = writer(tmp_path / "f.db", queue_items=3)
    # Not started: nothing drains, so the fourth record overflows.
    assert [w.submit(record()) for _ in range(5)] == [True, True, True, False, False]
    assert w.counters.dropped == 2
    w.start()
    w.stop()
    (rec,) = rows(tmp_path / "f.db", "select recorded, dropped from recorders")
    assert (rec["recorded"], rec["dropped"]) == (3, 2)


@pytest.mark.parametrize("locked", ["before-start", "while-running"])
def test_a_locked_database_delays_records_but_loses_none(tmp_path: Path, locked: str) -> None:
    path = tmp_path / "f.db"
    w = writer(path, busy_timeout_ms=100)
    blocker = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    if locked == "while-running":
        w.start()
        wait_for_rows(path, "select id from recorders", 1)  # the writer has the file open
    blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    if locked == "before-start":
        w.start()
    stored: list[int] = []
    w.on_stored = lambda flow_id, row: stored.append(flow_id)
    for _ in range(10):
        assert w.submit(record())
    released = threading.Event()

    def release_after_a_failed_attempt() -> None:
        while w.counters.errors == 0:
            threading.Event().wait(0.02)
        blocker.execute("COMMIT")
        released.set()

    threading.Thread(target=release_after_a_failed_attempt, daemon=True).start()
    assert released.wait(60)
    wait_for_rows(path, "select id from flows", 10)
    w.stop()
    blocker.close()
    assert len(stored) == 10 and w.counters.errors >= 1 and w.counters.dropped == 0


def test_a_database_locked_through_shutdown_is_given_up_on_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("inspector.proxy.writer.SHUTDOWN_GRACE", 0.3)
    path = tmp_path / "f.db"
    w = writer(path, busy_timeout_ms=50, batch_size=10)
    w.start()
    wait_for_rows(path, "select id from recorders", 1)
    blocker = sqlite3.connect(path, timeout=0, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    for _ in range(30):
        w.submit(record())
    w.stop(timeout=60)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert not w.alive
    assert w.counters.recorded == 0 and w.counters.dropped == 30 and w.counters.errors >= 1


def test_a_record_that_breaks_ingest_is_stored_in_fallback_form(tmp_path: Path) -> None:
    w = writer(tmp_path / "f.db")
    w.ingest._ingest = lambda rec: 1 / 0  # type: ignore[method-assign]
    w.start()
    w.submit(record())
    w.stop()
    (row,) = rows(tmp_path / "f.db", "select ingest_error, method from flows")
    assert row["ingest_error"].startswith("ZeroDivisionError") and row["method"] == "POST"
    assert w.counters.errors == 1


def test_records_that_break_insert_are_dropped_counted_and_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from inspector.store import database as store

    real = store.insert_rows

    def insert_rows(db, batch, seen_at):  # type: ignore[no-untyped-def]
        if any("/broken" in item.flow.url for item in batch):
            raise ValueError("cannot store this one")
        return real(db, batch, seen_at)

    monkeypatch.setattr(store, "insert_rows", insert_rows)
    w = writer(tmp_path / "f.db", batch_size=5, flush_interval=1.0)
    good, bad = record(), record(url="https://api.xero.com/practicemanager/3.0/job.api/broken")
    with caplog.at_level("ERROR"):
        for rec in (good, bad, good, bad, good):  # one batch: the good ones are still stored
            w.submit(rec)
        w.start()
        wait_for_rows(tmp_path / "f.db", "select id from flows", 3)
        for rec in (bad, bad):
            w.submit(rec)
        w.stop()
    assert len(rows(tmp_path / "f.db", "select id from flows")) == 3
    assert (w.counters.recorded, w.counters.dropped) == (3, 4)
    said = [r for r in caplog.records if "could not store" in r.getMessage()]
    assert [r.getMessage().split(":")[0] for r in said] == ["recorder could not store 2 record(s)"] * 2
    assert "ValueError: cannot store this one" in said[0].getMessage() and "/broken" in said[0].getMessage()
    assert said[0].exc_info and not said[1].exc_info  # the traceback once, not per batch


def test_a_bug_in_the_writer_costs_its_batch_not_the_thread(tmp_path: Path) -> None:
    class Broken(Ingest):
        def __call__(self, rec):  # type: ignore[no-untyped-def]
            if "/broken" in rec.url:  # past ingest's own guard, as a bug in the writer would be
                raise RuntimeError("writer bug")
            return super().__call__(rec)

    w = Writer(tmp_path / "f.db", Broken(Catalog.load()))
    w.start()
    w.submit(record(url="https://api.xero.com/practicemanager/3.0/job.api/broken"))
    wait_for_rows(tmp_path / "f.db", "select id from recorders where dropped = 1", 1)
    assert w.alive and w.accepting
    for _ in range(3):
        w.submit(record())
    w.stop()
    assert len(rows(tmp_path / "f.db", "select id from flows")) == 3
    assert (w.counters.recorded, w.counters.dropped) == (3, 1)


def test_a_traceback_once_per_place_it_is_raised() -> None:
    from inspector.utils.first_traceback import FirstTraceback

    first = FirstTraceback()

    def fail(n: int) -> BaseException:
        try:
            raise KeyError(n)
        except KeyError as e:
            return e

    a, b = fail(1), fail(2)
    assert first(a) is a and first(b) is None  # same type, same line: the message may differ
    try:
        raise KeyError(3)
    except KeyError as e:
        assert first(e) is e


def test_a_writer_that_replaces_a_dead_one_counts_from_the_row_not_from_what_it_was_told(tmp_path: Path) -> None:
    from inspector.proxy.counters import Counters

    # The first writer stores 5 records; its process dies before telling the proxy, which
    # counts them as dropped and hands the next writer (0 recorded, 5 dropped).
    db = tmp_path / "f.db"
    first = writer(db, recorder_id="r1")
    first.start()
    for _ in range(5):
        first.submit(record())
    wait_for_rows(db, "select id from recorders where recorded = 5", 1)  # in the batch's own transaction
    first.stop()
    second = writer(db, recorder_id="r1", counters=Counters(0, 5 + 2, 1))  # 2 really lost
    second.start()
    second.submit(record())
    second.stop()
    assert second.counters.as_tuple() == (6, 2, 1)
    (rec,) = rows(db, "select recorded, dropped, errors from recorders")
    assert (
        (rec["recorded"], rec["dropped"], rec["errors"]) == (6, 2, 1) == (len(rows(db, "select id from flows")), 2, 1)
    )
