"""What the recorder counts, and when it says it dropped something: one policy for both sides.

A record is counted exactly once: ``recorded`` when its row is committed, ``dropped`` when it
will never be (a full queue or pipe, a dead writer process, a batch the file refused), and
``errors`` counts failures, not records. The writer thread (in the writer process) and the
hand-over (in mitmproxy's process) both drop records; both say so through ``DropLog``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

SAY_EVERY = 1000  # under a sustained overload, one line per this many drops, not one per drop


@dataclass
class Counters:
    recorded: int = 0
    dropped: int = 0
    errors: int = 0

    def as_tuple(self) -> tuple[int, int, int]:
        return self.recorded, self.dropped, self.errors


class DropLog:
    """Say a drop at once when its reason is new, then every SAY_EVERY-th: a log that keeps
    up with a flood would be a flood of its own."""

    def __init__(self) -> None:
        self._reason = ""

    def __call__(self, dropped_so_far: int, why: str) -> None:
        if why != self._reason or dropped_so_far % SAY_EVERY == 0:
            self._reason = why
            log.warning("%s: %d record(s) dropped so far (traffic unaffected)", why, dropped_so_far)
