"""Tracebacks for the first failure of each kind only.

A fault that hits every exchange (a bug in ingest, a broken insert) would otherwise write the
same traceback hundreds of times a minute and bury the log; after the first, one line each.
"""

from __future__ import annotations

MAX_KINDS = 100  # bounded, like everything a long-running proxy keeps


class FirstTraceback:
    def __init__(self) -> None:
        self._seen: set[tuple[str, str, int]] = set()

    def __call__(self, exc: BaseException) -> BaseException | None:
        """``exc`` the first time its type is raised from that line (for ``exc_info``), else None."""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        key = (type(exc).__name__, tb.tb_frame.f_code.co_filename if tb else "", tb.tb_lineno if tb else 0)
        if key in self._seen or len(self._seen) >= MAX_KINDS:
            return None
        self._seen.add(key)
        return exc
