"""The pipe between the proxy and its writer process: frames, the config, the message kinds.

Proxy to child, on the child's stdin: length-prefixed frames, the first a JSON ``WriterConfig``,
then pickles of ``(kind, value)``: a batch of FlowRecords, or drops and errors the child's row
must count. Child to proxy, on its stdout: JSON lines, ``{"log": [level, text]}``,
``{"progress": [recorded, dropped, errors, finished]}`` after each batch, ``{"counters": {...}}``
at exit. Pickle is safe here: both ends are this program, and the pipe is private to them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from inspector.ingest.decoding import DEFAULT_MAX_BODY
from inspector.proxy.writer import DEFAULT_QUEUE_ITEMS

FRAME = struct.Struct("<I")
BATCH, DROPPED, ERRORS = "b", "d", "e"  # what a pickled (kind, value) frame carries


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
    recorder_id: str = ""  # one ``recorders`` row for the proxy, whichever child writes it
    base: tuple[int, int, int] = (0, 0, 0)  # recorded, dropped, errors before this child


def frame(data: bytes) -> bytes:
    return FRAME.pack(len(data)) + data


def read_frames(stream: IO[bytes]) -> Iterator[bytes]:
    """Each frame's bytes, until the proxy closes the pipe (or dies): what was sent is read."""
    while True:
        head = stream.read(FRAME.size)
        if len(head) < FRAME.size:
            return
        (size,) = FRAME.unpack(head)
        body = stream.read(size)
        if len(body) < size:
            return
        yield body
