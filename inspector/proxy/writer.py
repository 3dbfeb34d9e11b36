"""The writer: one thread owns the only write connection; hooks only hand it records.

Batching: the writer wakes when a record arrives, lingers up to FLUSH_INTERVAL for more
(or until a batch is full), then writes them all in one transaction. Waking per record
would hand the GIL back and forth with mitmproxy's event loop hundreds of times a second
and commit tiny batches; lingering costs a tenth of a second of visibility, nothing else.

Overflow policy: the queue is bounded by records *and* bytes. When it is full the
*record* is dropped and counted, never the traffic: a proxy that stalls the app to save
a log line has failed at its first job.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from inspector.ingest.pipeline import Ingest, Ingested
from inspector.ingest.record import FlowRecord
from inspector.ingest.redact import Redactor
from inspector.ingest.row import FlowRow
from inspector.proxy.counters import Counters, DropLog
from inspector.store.database import (
    BUSY_TIMEOUT_MS,
    StoreError,
    open_db,
    recorded_by,
    save_recorder,
)
from inspector.store.recording import Recording
from inspector.utils.first_traceback import FirstTraceback
from inspector.utils.text import plural, safe

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_QUEUE_ITEMS = 10_000
DEFAULT_QUEUE_BYTES = 512 * 1024 * 1024
BATCH_SIZE = 500
FLUSH_INTERVAL = 0.1  # the longest a record waits in the queue before its batch is written
STATS_INTERVAL = 1.0
# A batch that cannot be written (locked, read-only or full disk) is retried with backoff;
# at shutdown we give up after this long rather than hang the user's Ctrl+C.
RETRY_BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
SHUTDOWN_GRACE = 15.0


class RecordQueue:
    """A FIFO bounded by item count and by the body bytes its records hold."""

    def __init__(self, max_items: int, max_bytes: int, batch_size: int = BATCH_SIZE) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        self._items: deque[FlowRecord] = deque()
        self._bytes = 0
        self._closed = False
        self._cond = threading.Condition()

    def offer(self, rec: FlowRecord) -> bool:
        size = rec.body_bytes
        with self._cond:
            if self._closed or len(self._items) >= self.max_items or self._bytes + size > self.max_bytes:
                return False
            self._items.append(rec)
            self._bytes += size
            # Wake the writer for the first record (it starts lingering) and for a full batch.
            if len(self._items) == 1 or len(self._items) == self.batch_size:
                self._cond.notify()
            return True

    def take(self, timeout: float, linger: float = 0.0) -> list[FlowRecord] | None:
        """Up to a batch of records, waiting ``linger`` after the first for the batch to fill;
        [] after ``timeout`` with nothing; None once closed and empty."""
        full = self.batch_size
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._items and len(self._items) < full and not self._closed and linger > 0:
                self._cond.wait_for(lambda: len(self._items) >= full or self._closed, linger)
            if not self._items:
                return None if self._closed else []
            batch = [self._items.popleft() for _ in range(min(full, len(self._items)))]
            self._bytes -= sum(r.body_bytes for r in batch)
            return batch

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)


class Writer:
    """Ingests and stores FlowRecords on its own thread."""

    def __init__(
        self,
        path: str | Path,
        ingest: Ingest,
        *,
        info: dict[str, Any] | None = None,
        queue_items: int = DEFAULT_QUEUE_ITEMS,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        batch_size: int = BATCH_SIZE,
        flush_interval: float = FLUSH_INTERVAL,
        on_stored: Callable[[int, FlowRow], None] | None = None,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        recorder_id: str | None = None,
        counters: Counters | None = None,
        on_batch: Callable[[Counters, int], None] | None = None,
    ) -> None:
        """``recorder_id`` and ``counters`` continue a ``recorders`` row (a writer process that
        replaces one that died); ``on_batch`` hears the counters and the records finished
        (stored or counted as dropped) after every batch."""
        self.path = Path(path)
        self.ingest = ingest
        self.info = dict(info or {})
        self.flush_interval = flush_interval
        self.on_stored = on_stored
        self.busy_timeout_ms = busy_timeout_ms
        self.queue = RecordQueue(queue_items, queue_bytes, batch_size)
        self.counters = counters or Counters()
        self.on_batch = on_batch
        self.finished = 0
        self._counter_lock = threading.Lock()
        self._say_drop = DropLog()
        self._give_up_at = float("inf")  # set by stop(): one grace period for the whole drain
        self._thread = threading.Thread(target=self._run, name="xero-inspector-writer", daemon=True)
        self.recorder_id = recorder_id or uuid.uuid4().hex
        self._first_traceback = FirstTraceback()
        self.started_at = time.time()

    # --- called from proxy hooks: cheap, never blocks ---------------------------------------

    def submit(self, rec: FlowRecord, drop: bool = True) -> bool:
        """Queue a record; when the queue is full, drop it and count it (or, with
        ``drop=False``, leave that to the caller, who will offer it again)."""
        if self.queue.offer(rec):
            return True
        if not drop:
            return False
        with self._counter_lock:
            self.counters.dropped += 1
            self._say_drop(self.counters.dropped, "recorder queue full")
        return False

    def count_error(self, n: int = 1) -> None:
        with self._counter_lock:
            self.counters.errors += n

    def count_dropped(self, n: int) -> None:
        """Records lost before they reached us (the proxy's side of a writer process)."""
        with self._counter_lock:
            self.counters.dropped += n

    @property
    def accepting(self) -> bool:
        """False once the queue is closed (stopping, or the file cannot be ours)."""
        return not self.queue.closed

    def _count_lost(self, n: int, why: str, exc: BaseException | None = None) -> None:
        """Records that will never be stored: counted as dropped, and said once per batch."""
        with self._counter_lock:
            self.counters.dropped += n
            self.counters.errors += 1
        trace = self._first_traceback(exc) if exc is not None else None
        log.error("recorder could not store %d record(s): %s; traffic unaffected", n, why, exc_info=trace)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread. The file is the caller's to check first (the Recorder does, in
        configure); the thread waits out locks and stops recording on a file not ours."""
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Write everything queued, then stop. A database that stays unwritable gets
        SHUTDOWN_GRACE seconds in all, not per batch: Ctrl+C must end the proxy."""
        self._give_up_at = time.monotonic() + SHUTDOWN_GRACE
        self.queue.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        db = self._open()
        if db is None:
            return
        recording = Recording(db, self.ingest)
        self._resume(db)
        next_stats = 0.0
        try:
            while True:
                batch = self.queue.take(STATS_INTERVAL, self.flush_interval)
                if batch is None:
                    break
                if batch:
                    try:
                        self._write(recording, batch)
                    except Exception as e:  # a bug must cost this batch, not every record after it
                        self._count_lost(len(batch), f"{type(e).__name__}: {e}", e)
                    self.finished += len(batch)
                    self._progress()
                if time.monotonic() >= next_stats:
                    self._save_stats(db)
                    next_stats = time.monotonic() + STATS_INTERVAL
            self._save_stats(db, stopped=True)
        finally:
            # Should the thread end any other way, stop taking records: the queue would fill
            # and the process feeding it would wait on a reader that is gone.
            self.queue.close()
            db.close()

    def _resume(self, db: Database) -> None:
        """Go on from the row a writer process that died left. Its last batch may have been
        committed after it last told the proxy (which then counted that batch as dropped): the
        row, saved in the batch's own transaction, says how many were really stored."""
        stored = recorded_by(db, self.recorder_id)
        with self._counter_lock:
            surplus = min(stored - self.counters.recorded, self.counters.dropped) if stored else 0
            if surplus > 0:
                self.counters.recorded += surplus
                self.counters.dropped -= surplus
        self._save_stats(db)  # the row exists before the first batch counts itself in it

    def _progress(self) -> None:
        if self.on_batch is None:
            return
        try:
            self.on_batch(self.counters, self.finished)
        except Exception as e:  # telling is not storing: the next batch must still be written
            log.error("recorder could not report its progress: %s", e, exc_info=self._first_traceback(e))

    def _persist(self, action: Callable[[], T], at_stake: Callable[[], int]) -> T | None:
        """Run a database action until it works, waiting out what passes: a lock another writer
        holds, a read-only or full disk. Gives up only past the shutdown grace, counting what is
        ``at_stake`` as dropped (None). What retrying cannot fix is raised to the caller."""
        attempt = 0
        said = ""
        while True:
            try:
                result = action()
            except (sqlite3.OperationalError, StoreError) as e:
                if isinstance(e, StoreError) and not e.transient:
                    raise
                self.count_error()
                if str(e) != said:  # once per reason: a full disk, then a read-only one, is two
                    said = str(e)
                    log.error("recorder cannot use %s (%s); retrying, traffic unaffected", self.path, e)
                if time.monotonic() > self._give_up_at:
                    self._count_lost(at_stake(), f"gave up at shutdown ({e})")
                    return None
                time.sleep(RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF) - 1)])
                attempt += 1
                continue
            if attempt:
                log.info("recorder writes again after %d failed attempt(s)", attempt)
            return result

    def _open(self) -> Database | None:
        try:
            return self._persist(
                lambda: open_db(self.path, busy_timeout_ms=self.busy_timeout_ms), lambda: len(self.queue)
            )
        except StoreError as e:  # a file that cannot be ours: stop recording, keep proxying
            self.count_error()
            log.error("recorder cannot open the database: %s; recording stopped", e)
            self.queue.close()  # from now on records are dropped and counted, not hoarded
            return None

    def _write(self, recording: Recording, batch: list[FlowRecord]) -> None:
        items = recording.ingest_all(batch)
        self.count_error(sum(1 for i in items if i.flow.ingest_error))
        try:
            ids = self._persist(lambda: recording.insert(items, self._stats(len(items))), lambda: len(items))
        except Exception:  # not the file's fault: find the record that causes it
            ids = self._write_one_by_one(recording, items)
        if ids is None:
            return
        with self._counter_lock:
            self.counters.recorded += len(ids)
        if self.on_stored:
            try:
                for flow_id, item in zip(ids, items, strict=False):
                    self.on_stored(flow_id, item.flow)
            except Exception as e:  # the flow log; the records are stored all the same
                log.error("recorder could not log a stored flow: %s", e, exc_info=self._first_traceback(e))

    def _write_one_by_one(self, recording: Recording, items: list[Ingested]) -> list[int]:
        """A batch failed for a reason other than the file: store the records that can be,
        and count the rest as dropped (with the first one's traceback, not one per record)."""
        ids: list[int] = []
        failed: list[Ingested] = []
        first: Exception | None = None
        for item in items:
            try:
                ids.extend(recording.insert([item], self._stats(len(ids) + 1)))
            except Exception as e:
                failed.append(item)
                first = first or e
        if first is not None:
            f = failed[0].flow
            url = Redactor().url(f.url)  # a log is not the store: keys stay out even if kept
            self._count_lost(len(failed), f"{type(first).__name__}: {first} (first: {f.method} {url})", first)
        return ids

    def _stats(self, storing: int = 0, stopped: bool = False) -> dict[str, Any]:
        """The recorder's row, counting ``storing`` more records as recorded (the batch whose
        transaction saves it)."""
        now = time.time()
        with self._counter_lock:
            counters = Counters(self.counters.recorded + storing, self.counters.dropped, self.counters.errors)
        return {
            "id": self.recorder_id,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "updated_at": now,
            "stopped_at": now if stopped else None,
            "recorded": counters.recorded,
            "dropped": counters.dropped,
            "errors": counters.errors,
            "queue_depth": len(self.queue),
            **self.info,
        }

    def _save_stats(self, db: Database, stopped: bool = False) -> None:
        try:
            save_recorder(db, self._stats(stopped=stopped))
        except sqlite3.Error as e:
            log.debug("recorder counters not saved: %s", e)


def log_stored(flow_id: int, row: FlowRow) -> None:
    log.info(flow_line(flow_id, row))


def flow_line(flow_id: int, row: FlowRow) -> str:
    """The proxy's line for one recorded exchange (``proxy`` without --quiet)."""
    what = "/".join(x for x in (row.resource, row.operation) if x)
    status = row.status or "---"
    # A log is not the store: keys in the URL are fingerprinted here even with --keep-secrets.
    url = Redactor().url(row.url)
    line = f"#{flow_id} {row.method} {url} -> {status} [{row.family} {what}] {row.outcome}"
    detail = row.api_error or row.error
    if row.outcome != "ok" and detail:
        line += f": {detail}"
    errors, warnings = row.errors, row.warnings
    if errors or warnings:
        line += f" · {plural(errors, 'error')}, {plural(warnings, 'warning')}"
    if row.injected:
        line += f" · injected: {row.injected}"
    if row.paused:
        line += f" · paused: {row.paused}"
    return safe(line)
