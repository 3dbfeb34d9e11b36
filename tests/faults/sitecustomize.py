"""Failures injected into the recorder, for the passthrough-fidelity tests.

Python imports this module at start-up when this folder is on PYTHONPATH, which the test puts
there for the proxy under test; its writer process inherits it. With XERO_INSPECTOR_FAULTS
naming a file, every ingest and every insert first reads that file and raises what it names:
``ingest`` (a bug in decoding or checking an exchange) or ``insert`` (a bug in storing one).
Disk faults need no help from here: the test fills the disk or makes the files read-only.
"""

from __future__ import annotations

import os
from typing import Any

_CONTROL = os.environ.get("XERO_INSPECTOR_FAULTS")


def _active(name: str) -> bool:
    try:
        with open(_CONTROL or "", encoding="utf-8") as f:
            return f.read().strip() == name
    except OSError:
        return False


if _CONTROL:
    from inspector.ingest import pipeline as ingest
    from inspector.store import database as store

    _insert_rows = store.insert_rows
    _ingest = ingest.Ingest._ingest

    def insert_rows(*args: Any, **kwargs: Any) -> Any:
        if _active("insert"):
            raise RuntimeError("injected fault: insert")
        return _insert_rows(*args, **kwargs)

    def ingest_one(self: Any, rec: Any) -> Any:
        if _active("ingest"):
            raise RuntimeError("injected fault: ingest")
        return _ingest(self, rec)

    store.insert_rows = insert_rows  # type: ignore[assignment]
    ingest.Ingest._ingest = ingest_one  # type: ignore[method-assign]
