from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from inspector.catalog import Catalog
from inspector.ingest import Ingest
from inspector.writer import RecordQueue, Writer
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
    monkeypatch.setattr("inspector.writer.SHUTDOWN_GRACE", 0.3)
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
