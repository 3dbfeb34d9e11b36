"""The proxy's side of the writer process: records held, handed over in frames, counted.

The writer runs in a process of its own (``writer_main.py``), at the lowest CPU priority.

Why a process: ingest (decode, classify, redact, validate, insert) costs about 200 us of CPU
per exchange. On mitmproxy's side of the GIL that is time taken from the event loop that
forwards the traffic; in a child it runs on another core, and at ``nice 19`` it only gets the
CPU the traffic leaves idle. Under a load that saturates the machine the child falls behind
and catches up when the burst ends; Xero's own limits (60 calls a minute per organisation,
10,000 per app) are far below what it ingests per second, so in real use it keeps pace.

The hook only holds the record; every HANDOVER_INTERVAL the event loop pickles what it holds
and writes it to the child's stdin in one frame, without blocking (a write and a wake-up of the
child per exchange cost the loop a tenth of its throughput). When the pipe is full the frame
waits, bounded like the writer's queue (items and bytes), and the loop finishes the write when
the pipe drains; past the bound the record is dropped and counted, never the traffic. The child
sends back its log lines, its counters after each batch it finishes and at exit, as JSON lines on
its stdout. If the proxy is killed the child reads to the end of what it was sent, stores it, and
exits. If the child dies, the records it held are counted as dropped (what it had been handed,
less what it said it had finished) and a new child takes over at the next exchange, after a
back-off, on the same ``recorders`` row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict
from pathlib import Path

from inspector.ingest.record import FlowRecord
from inspector.proxy.counters import Counters, DropLog
from inspector.proxy.wire import BATCH, DROPPED, ERRORS, WriterConfig, frame
from inspector.proxy.writer import DEFAULT_QUEUE_BYTES, SHUTDOWN_GRACE

log = logging.getLogger(__name__)

PIPE_SIZE = 1 << 20  # Linux's default ceiling for an unprivileged F_SETPIPE_SZ
HANDOVER_INTERVAL = 0.05  # the longest a record waits in the proxy before it goes to the child
HANDOVER_BYTES = 256 * 1024  # or sooner, when the records held carry this many body bytes
RESTART_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # before the 1st, 2nd… new child in a row
STEADY = 60.0  # a child that lived this long resets the back-off


class WriterProcess:
    """The proxy's side: same surface as ``Writer`` (submit, count_error, stop, counters)."""

    def __init__(self, config: WriterConfig, *, queue_bytes: int = DEFAULT_QUEUE_BYTES) -> None:
        self.config = config
        self.config.recorder_id = self.config.recorder_id or uuid.uuid4().hex
        self.max_items = config.queue_items  # the bound here is the child's queue's: one setting
        self.max_bytes = queue_bytes
        self.counters = Counters()  # ours until stop() takes the child's final figures
        self._batch: list[FlowRecord] = []  # records waiting for the next hand-over
        self._batch_bytes = 0
        self._pending: deque[tuple[memoryview, int]] = deque()  # (frame left to write, records in it)
        self._pending_bytes = 0
        self._held = 0  # records in the batch and in pending frames: the bound is on these
        self._lock = threading.Lock()  # hooks run on the loop; the child's reader thread too
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._watching = False
        self._broken = False  # the child is gone (or going): nothing more is written to it
        self._exited = True  # its reader has seen it end and counted what it took with it
        self._stopping = False
        self._unreported = Counters()  # drops and errors the current child has not been told
        self._reader: threading.Thread | None = None
        self._final: Counters | None = None
        # The current child's figures as it last said (its base included), and how many records
        # it has been handed and said it finished: the difference dies with it.
        self._progress = Counters()
        self._handed = 0
        self._done = 0
        self._deaths = 0  # children in a row that died before STEADY
        self._started = 0.0
        self._retry_at = 0.0
        self._say_drop = DropLog()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])  # the folder holding inspector/
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "inspector.proxy.writer_main"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            # Ctrl+C in the proxy's terminal must not kill the child before it has drained:
            # it ends when its stdin does.
            process_group=0,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._fd = self._proc.stdin.fileno()
        with contextlib.suppress(AttributeError, OSError):  # Linux only; a bigger pipe is only slack
            import fcntl

            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self.config.info.setdefault("started_at", time.time())  # the row's, not this child's
        config = json.dumps(asdict(self.config)).encode()
        os.write(self._fd, frame(config))  # an empty pipe takes it whole
        os.set_blocking(self._fd, False)
        self._broken, self._exited, self._final = False, False, None
        self._progress = Counters(*self.config.base)
        self._handed = self._done = 0
        self._started = time.monotonic()
        self._reader = threading.Thread(
            target=self._read_child, args=(self._proc,), name="xero-inspector-writer-log", daemon=True
        )
        self._reader.start()

    def stop(self, timeout: float | None = None) -> None:
        """Hand over everything held, close the pipe, and wait for the child to store it."""
        proc = self._proc
        if proc is None:
            return
        with self._lock:
            self._stopping = True
            if self._timer is not None:
                self._timer.cancel()
            self._unwatch()
            if not self._broken:
                self._hand_over()
                self._report()
                try:
                    os.set_blocking(self._fd, True)
                    while self._pending:
                        left = self._pending.popleft()[0]
                        while left:  # a blocking pipe write may still come back short on a signal
                            left = left[os.write(self._fd, left) :]
                except OSError as e:
                    self._gone(e)
            self._pending.clear()
            assert proc.stdin is not None
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout if timeout is not None else SHUTDOWN_GRACE + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            log.error("recorder process did not finish storing in time; stopped it")
        if self._reader is not None:
            self._reader.join(5)
        self._proc = None
        # The last child's figures include every child's before it; add what none was told.
        last = self._final or self._progress
        for name in ("recorded", "dropped", "errors"):
            setattr(self.counters, name, getattr(last, name) + getattr(self._unreported, name))

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # --- called from proxy hooks: cheap, never blocks ---------------------------------------

    def submit(self, rec: FlowRecord) -> bool:
        """Hold a record for the next hand-over. Records go to the child in batches, every
        HANDOVER_INTERVAL or HANDOVER_BYTES: one pickle, one write and one wake-up of the child
        for many exchanges (per exchange, they cost the event loop a tenth of its throughput)."""
        with self._lock:
            if self._broken and not self._stopping:
                self._maybe_restart()
            if self._broken or self._stopping or self._proc is None:
                self._drop("no recorder process")
                return False
            size = rec.body_bytes
            if self._held >= self.max_items or self._pending_bytes + self._batch_bytes + size > self.max_bytes:
                self._drop("recorder queue full")
                return False
            self._batch.append(rec)
            self._batch_bytes += size
            self._held += 1
            if self._batch_bytes >= HANDOVER_BYTES or not self._schedule():
                self._hand_over()
        return True

    def count_error(self, n: int = 1) -> None:
        with self._lock:
            self.counters.errors += n
            self._unreported.errors += n
            if not self._broken and not self._stopping and self._proc is not None:
                self._report()

    # --- a child that died --------------------------------------------------------------------

    def _maybe_restart(self) -> None:
        """A new child, once the old one's reader has counted what it took with it and the
        back-off has passed. From a hook: spawning takes a few milliseconds, once in a while."""
        if not self._exited or time.monotonic() < self._retry_at:
            return
        try:
            self.start()
        except OSError as e:
            self._retry_at = time.monotonic() + RESTART_BACKOFF[-1]
            log.error("recorder process could not be started again (%s); retrying in %.0f s", e, RESTART_BACKOFF[-1])
            return
        log.warning("recorder process started again; recording resumes")
        self._report()  # what was lost meanwhile goes on the same row

    def _child_ended(self, code: int) -> None:
        """The reader saw the child end: count the records it had not finished, and plan its successor."""
        with self._lock:
            lost = 0
            if self._final is None:  # it died: what it was handed and did not finish is lost
                lost = max(0, self._handed - self._done)
                self.counters.dropped += lost
                # Counted as dropped in the figures the next child starts from; that child
                # finds in the row any of them its predecessor stored just before it died.
                self._progress.dropped += lost
            if not self._stopping:
                lived = time.monotonic() - self._started
                self._deaths = 1 if lived >= STEADY else self._deaths + 1
                delay = RESTART_BACKOFF[min(self._deaths, len(RESTART_BACKOFF)) - 1]
                self._retry_at = time.monotonic() + delay
                what = f"{lost} record(s) it had not stored are lost; a new one starts in {delay:g} s"
                if self._broken:  # a write to it failed first, and said so
                    log.error("recorder process ended (exit code %d): %s", code, what)
                self._gone(f"exit code {code}", what)
                self.config.base = self._progress.as_tuple()
            self._exited = True

    # --- the pipe -----------------------------------------------------------------------------

    def _schedule(self) -> bool:
        """Make sure a hand-over is due; False when there is no event loop to run it."""
        if self._timer is not None:
            return True
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop (tests, scripts): hand over at once
            return False
        self._timer = self._loop.call_later(HANDOVER_INTERVAL, self._on_timer)
        return True

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            if not self._stopping:
                self._hand_over()

    def _hand_over(self) -> None:
        if not self._batch or self._broken:
            return
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        self._report()
        self._send(pickle.dumps((BATCH, batch), pickle.HIGHEST_PROTOCOL), len(batch))

    def _send(self, data: bytes, records: int = 0) -> None:
        framed = frame(data)
        self._pending.append((memoryview(framed), records))
        self._pending_bytes += len(framed)
        self._flush()

    def _flush(self) -> None:
        """Write what the pipe takes now; ask the event loop to finish the rest."""
        try:
            while self._pending:
                head, records = self._pending[0]
                n = os.write(self._fd, head)
                self._pending_bytes -= n
                if n < len(head):
                    self._pending[0] = (head[n:], records)
                    break
                self._pending.popleft()
                self._held -= records
                self._handed += records
        except BlockingIOError:
            pass
        except OSError as e:
            self._gone(e)
            return
        if self._pending:
            self._watch()
        else:
            self._unwatch()

    def _watch(self) -> None:
        if self._watching or self._stopping:  # stop() writes the rest itself, blocking
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop: the next hand-over or stop() writes it
            return
        self._loop.add_writer(self._fd, self._on_writable)
        self._watching = True

    def _unwatch(self) -> None:
        if self._watching and self._loop is not None:
            with contextlib.suppress(Exception):  # the loop may be closed at shutdown
                self._loop.remove_writer(self._fd)
        self._watching = False

    def _on_writable(self) -> None:
        with self._lock:
            self._flush()

    def _drop(self, why: str) -> None:
        """A record we could not hand over: counted, and told to the child with the next batch."""
        self.counters.dropped += 1
        self._unreported.dropped += 1
        self._say_drop(self.counters.dropped, why)

    def _report(self) -> None:
        """Tell the child the drops and errors it has not heard of, so its row counts them."""
        if self._broken:
            return
        told, self._unreported = self._unreported, Counters()
        if told.dropped:
            self._send(pickle.dumps((DROPPED, told.dropped)))
        if told.errors:
            self._send(pickle.dumps((ERRORS, told.errors)))

    def _gone(self, why: object, what: str = "") -> None:
        """The child is gone: nothing we hold can be stored by it."""
        if self._broken:
            return
        self._broken = True
        self._unwatch()
        lost = self._held
        self.counters.dropped += lost
        self._unreported.dropped += lost
        self._pending.clear()
        self._batch.clear()
        self._pending_bytes = self._batch_bytes = self._held = 0
        what = ", ".join(x for x in (f"{lost} record(s) waiting for it dropped" if lost else "", what) if x)
        log.error("recorder process is gone (%s): %s; traffic unaffected", why, what or "nothing was waiting")

    # --- the child's stdout -------------------------------------------------------------------

    def _read_child(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                log.info("recorder: %s", line.decode("utf-8", "replace").rstrip())
                continue
            if "log" in msg:
                level, text = msg["log"]
                log.log(int(level), "%s", text)
            elif "progress" in msg:
                recorded, dropped, errors, done = msg["progress"]
                with self._lock:
                    self._progress = Counters(recorded, dropped, errors)
                    self._done = done
            elif "counters" in msg:
                self._final = Counters(**msg["counters"])
        self._child_ended(proc.wait())
