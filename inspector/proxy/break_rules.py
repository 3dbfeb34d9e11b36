"""Breakpoints: ``[response|both] FILTER``.

A breakpoint holds every Xero call its filter matches (the browser's filter language; none:
every call) before it leaves for Xero, or, with ``response`` first, Xero's answer before the
app gets it; ``both`` holds each call twice. A leading word that is not a side belongs to the
filter.
"""

from __future__ import annotations

from dataclasses import dataclass

from inspector.store.query import FilterError, Where, compile_filter

SIDES = {"request": ("request",), "response": ("response",), "both": ("request", "response")}


class BreakError(ValueError):
    """A breakpoint that does not parse; the message is one line that names it."""


@dataclass(frozen=True)
class BreakRule:
    sides: tuple[str, ...]
    filter: str
    where: Where

    def holds(self, side: str) -> bool:
        return side in self.sides

    def describe(self) -> str:
        side = next(name for name, sides in SIDES.items() if sides == self.sides)
        return " ".join(part for part in ("" if side == "request" else side, self.filter) if part) or "every call"


def parse(text: str) -> BreakRule:
    first, _, rest = text.strip().partition(" ")
    sides = SIDES.get(first)
    expr = rest.strip() if sides else text.strip()
    try:
        where = compile_filter(expr)
    except FilterError as e:
        raise BreakError(f"breakpoint {text.strip()!r}: {e}") from e
    return BreakRule(sides or SIDES["request"], expr, where)
