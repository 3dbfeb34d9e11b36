"""The recorder's writer in a process of its own, at the lowest CPU priority.

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
sends back its log lines and, at exit, its counters, as JSON lines on its stdout. If the proxy
is killed the child reads to the end of what it was sent, stores it, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from .bodies import DEFAULT_MAX_BODY
from .record import FlowRecord
from .writer import DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_ITEMS, SHUTDOWN_GRACE, Counters

log = logging.getLogger(__name__)

FRAME = struct.Struct("<I")
PIPE_SIZE = 1 << 20  # Linux's default ceiling for an unprivileged F_SETPIPE_SZ
NICE = 19
SUBMIT_RETRY = 0.005  # the child's wait for room in its queue (backpressure, not a drop)
HANDOVER_INTERVAL = 0.05  # the longest a record waits in the proxy before it goes to the child
HANDOVER_BYTES = 256 * 1024  # or sooner, when the records held carry this many body bytes


@dataclass
class WriterConfig:
    """What the child needs to build the same Ingest and Writer the proxy would."""

    db: str
    catalogs: list[str] = field(default_factory=list)
    keep_secrets: bool = False
    max_body: int = DEFAULT_MAX_BODY
    validate: bool = True
    queue_items: int = DEFAULT_QUEUE_ITEMS
    flow_log: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class WriterProcess:
    """The proxy's side: same surface as ``Writer`` (submit, count_error, stop, counters)."""

    def __init__(
        self, config: WriterConfig, *, queue_items: int = DEFAULT_QUEUE_ITEMS, queue_bytes: int = DEFAULT_QUEUE_BYTES
    ) -> None:
        self.config = config
        self.max_items = queue_items
        self.max_bytes = queue_bytes
        self.counters = Counters()  # ours until stop() takes the child's final figures
        self._batch: list[FlowRecord] = []  # records waiting for the next hand-over
        self._batch_bytes = 0
        self._pending: deque[tuple[memoryview, int]] = deque()  # (frame left to write, records in it)
        self._pending_bytes = 0
        self._held = 0  # records in the batch and in pending frames: the bound is on these
        self._lock = threading.Lock()  # hooks run on the loop; stop() may run elsewhere
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._watching = False
        self._broken = False
        self._stopping = False
        self._unreported = 0  # drops the child has not been told about yet
        self._unsent = Counters()  # what the child can never be told: it is gone
        self._reader: threading.Thread | None = None
        self._final: dict[str, int] | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        package_root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "inspector.writer_process"],
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
        config = json.dumps(asdict(self.config)).encode()
        os.write(self._fd, FRAME.pack(len(config)) + config)  # an empty pipe takes it whole
        os.set_blocking(self._fd, False)
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
                self._report_drops()
                try:
                    os.set_blocking(self._fd, True)
                    while self._pending:
                        frame = self._pending.popleft()[0]
                        while frame:  # a blocking pipe write may still come back short on a signal
                            frame = frame[os.write(self._fd, frame) :]
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
        if self._final is not None:  # the child's figures include what we told it
            self._unsent.dropped += self._unreported
            self._unreported = 0
            for name in ("recorded", "dropped", "errors"):
                setattr(self.counters, name, int(self._final.get(name, 0)) + getattr(self._unsent, name))

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
            if self._broken or self._stopping or self._proc is None:
                self._drop()
                return False
            size = rec.body_bytes
            if self._held >= self.max_items or self._pending_bytes + self._batch_bytes + size > self.max_bytes:
                self._drop()
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
            if not self._broken and not self._stopping and self._proc is not None:
                self._send(pickle.dumps(("e", n)))
            else:
                self._unsent.errors += n

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
        self._report_drops()
        self._send(pickle.dumps(("b", batch), pickle.HIGHEST_PROTOCOL), len(batch))

    def _send(self, data: bytes, records: int = 0) -> None:
        frame = FRAME.pack(len(data)) + data
        self._pending.append((memoryview(frame), records))
        self._pending_bytes += len(frame)
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

    def _drop(self) -> None:
        """A record we could not hand over: counted, and told to the child with the next batch."""
        self.counters.dropped += 1
        self._unreported += 1
        dropped = self.counters.dropped
        if dropped == 1 or dropped % 1000 == 0:
            log.warning("recorder queue full: %d record(s) dropped so far (traffic unaffected)", dropped)

    def _report_drops(self) -> None:
        if self._unreported and not self._broken:
            n, self._unreported = self._unreported, 0
            self._send(pickle.dumps(("d", n)))

    def _gone(self, why: object) -> None:
        """The child is gone: nothing we hold can be stored any more."""
        if self._broken:
            return
        self._broken = True
        self._unwatch()
        lost = self._held
        self.counters.dropped += lost
        self._unsent.dropped += lost
        self._pending.clear()
        self._batch.clear()
        self._pending_bytes = self._batch_bytes = self._held = 0
        log.error("recorder process is gone (%s): recording stopped, traffic unaffected", why)

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
            elif "counters" in msg:
                self._final = msg["counters"]
        code = proc.wait()
        with self._lock:
            if not self._stopping:
                self._gone(f"exit code {code}")


# --- the child ----------------------------------------------------------------------------------


class _JsonLines(logging.Handler):
    """The child's log records, one JSON line each, for the proxy to log as its own."""

    def __init__(self, out: IO[str]) -> None:
        super().__init__()
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        with self.lock or contextlib.nullcontext():
            self.out.write(json.dumps({"log": [record.levelno, text]}) + "\n")
            self.out.flush()


def _frames(stream: IO[bytes]) -> Any:
    while True:
        head = stream.read(FRAME.size)
        if len(head) < FRAME.size:
            return  # the proxy closed the pipe (or died): what was sent has been read
        (size,) = FRAME.unpack(head)
        body = stream.read(size)
        if len(body) < size:
            return
        yield body


def _yield_cpu() -> None:
    """Run only on CPU the traffic leaves idle: nice 19 everywhere, SCHED_IDLE on Linux. The
    child stays in the proxy's session (and so its autogroup), where these weights count."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(NICE)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def child_main() -> int:
    from .catalog import Catalog
    from .ingest import Ingest
    from .validate import SchemaCache, Validator
    from .writer import Writer, log_stored

    _yield_cpu()
    out = sys.stdout
    root = logging.getLogger()
    root.handlers[:] = [_JsonLines(out)]
    root.setLevel(logging.INFO)
    frames = _frames(sys.stdin.buffer)
    first = next(frames, None)
    if first is None:
        return 0
    config = WriterConfig(**json.loads(first))
    ingest = Ingest(
        Catalog.load(config.catalogs),
        keep_secrets=config.keep_secrets,
        max_body=config.max_body,
        validator=Validator(SchemaCache()) if config.validate else None,
    )
    writer = Writer(
        config.db,
        ingest,
        info=config.info,
        queue_items=config.queue_items,
        on_stored=log_stored if config.flow_log else None,
    )
    writer.start()
    for frame in frames:
        kind, value = pickle.loads(frame)
        if kind == "b":
            for rec in value:
                # Backpressure, not a drop: the pipe fills and the proxy's bounded buffer decides.
                while not writer.submit(rec, drop=False):
                    if not writer.accepting:  # the file cannot be ours: the writer said why
                        writer.count_dropped(1)
                        break
                    time.sleep(SUBMIT_RETRY)
        elif kind == "d":
            writer.count_dropped(value)
        elif kind == "e":
            writer.count_error(value)
    writer.stop()
    out.write(json.dumps({"counters": asdict(writer.counters)}) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
