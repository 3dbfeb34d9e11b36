"""The writer process: reads what the proxy hands over and stores it, at the lowest priority.

Started by ``handover.WriterProcess`` as ``python -m inspector.proxy.writer_main``. It reads
frames from its stdin (``wire.py``), feeds them to a ``Writer`` thread, and tells the proxy its
log lines and counters as JSON lines on its stdout. When its stdin ends (the proxy stopped, or
was killed) it stores what it was sent and exits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import sys
import threading
import time
from dataclasses import asdict
from typing import IO, Any

from inspector.proxy.counters import Counters
from inspector.proxy.wire import BATCH, DROPPED, ERRORS, WriterConfig, read_frames

NICE = 19
SUBMIT_RETRY = 0.005  # the wait for room in the writer's queue (backpressure, not a drop)


_SAY = threading.Lock()  # log lines come from any thread, progress from the writer's
_proxy_gone = False


def _say(out: IO[str], message: dict[str, Any]) -> None:
    """One JSON line to the proxy. Never raises: a proxy that was killed has closed the pipe,
    and the child must go on storing what it was sent, not die of having no one to tell."""
    global _proxy_gone
    with _SAY:
        if _proxy_gone:
            return
        try:
            out.write(json.dumps(message) + "\n")
            out.flush()
        except (OSError, ValueError):
            _proxy_gone = True
            # What is left in the stream's buffer would fail again at exit, with a traceback.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())


class _JsonLines(logging.Handler):
    """The child's log records, one JSON line each, for the proxy to log as its own."""

    def __init__(self, out: IO[str]) -> None:
        super().__init__()
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        _say(self.out, {"log": [record.levelno, text]})


def _yield_cpu() -> None:
    """Run only on CPU the traffic leaves idle: nice 19 everywhere, SCHED_IDLE on Linux. The
    child stays in the proxy's session (and so its autogroup), where these weights count."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(NICE)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def child_main() -> int:
    from inspector.ingest.catalog import Catalog
    from inspector.ingest.pipeline import Ingest
    from inspector.ingest.validate import SchemaCache, Validator
    from inspector.proxy.writer import Writer, log_stored

    _yield_cpu()
    out = sys.stdout
    root = logging.getLogger()
    root.handlers[:] = [_JsonLines(out)]
    root.setLevel(logging.INFO)
    frames = read_frames(sys.stdin.buffer)
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

    def progress(c: Counters, finished: int) -> None:
        # After every batch: should this process die, the proxy knows what it took with it.
        _say(out, {"progress": [c.recorded, c.dropped, c.errors, finished]})

    writer = Writer(
        config.db,
        ingest,
        info=config.info,
        queue_items=config.queue_items,
        on_stored=log_stored if config.flow_log else None,
        recorder_id=config.recorder_id or None,
        counters=Counters(*config.base),
        on_batch=progress,
    )
    writer.start()
    for frame in frames:
        kind, value = pickle.loads(frame)
        if kind == BATCH:
            for rec in value:
                # Backpressure, not a drop: the pipe fills and the proxy's bounded buffer decides.
                while not writer.submit(rec, drop=False):
                    if not writer.accepting:  # the file cannot be ours: the writer said why
                        writer.count_dropped(1)
                        break
                    time.sleep(SUBMIT_RETRY)
        elif kind == DROPPED:
            writer.count_dropped(value)
        elif kind == ERRORS:
            writer.count_error(value)
    writer.stop()
    _say(out, {"counters": asdict(writer.counters)})
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
