"""A thread that reads the recording every so often, for an addon that takes orders from the
browser (fault rules, breakpoints, answers to paused calls; store/controls.py).

Each read opens and closes its own connection: one held open would keep the recorder, closing
last, from folding the WAL back into the file when the proxy stops. A read that fails is logged
and the next one tried; ``tick`` runs after every read, failed or not, so what depends on time
(a paused call's deadline) never waits on the file.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from inspector.store.database import StoreError, open_for_reading
from inspector.utils.first_traceback import FirstTraceback

log = logging.getLogger(__name__)


class FilePoller:
    def __init__(
        self,
        name: str,
        read: Callable[[sqlite3.Connection], None],
        interval: Callable[[], float],
        tick: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._read = read
        self._interval = interval
        self._tick = tick
        self._kick = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._first = FirstTraceback()

    def start(self, db: Path) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, args=(db,), name=self.name, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Read now rather than at the end of the interval."""
        self._kick.set()

    def stop(self) -> None:
        self._stopping = True
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self, db: Path) -> None:
        while not self._stopping:
            try:
                if db.exists():
                    with closing(open_for_reading(db)) as conn:
                        self._read(conn)
            except (StoreError, sqlite3.Error) as e:
                log.debug("%s: the recording was not read: %s", self.name, e)
            except Exception as e:  # never let the poller die quietly
                log.error("%s: the recording was not read: %s", self.name, e, exc_info=self._first(e))
            if self._tick is not None:
                try:
                    self._tick()
                except Exception as e:
                    log.error("%s: %s", self.name, e, exc_info=self._first(e))
            self._kick.wait(self._interval())
            self._kick.clear()
