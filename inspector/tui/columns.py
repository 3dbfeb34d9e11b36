"""The flow list's columns: which are shown, and how wide, for a terminal width and the content.

Every column has a priority and a range of widths; its content (the longest organisation name,
resource/operation or outcome seen so far) decides where in that range it sits. Width is handed
out in the order of ``CLAIMS``: on an 80-column terminal time, method, resource/op, code, outcome
and findings always stay; API and organisation come next, then milliseconds, duration and size.
A wide terminal shows everything at the width its content needs, and leaves the rest blank
rather than padding one column with it. Nothing here knows Textual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SEP = 1  # one space between columns


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    min: int  # the narrowest it is of use at
    max: int  # the widest its content may make it
    always: bool = False  # shown at any width (cut before anything else goes)
    right: bool = False  # numbers line up on the right


COLUMNS: tuple[Column, ...] = (
    Column("mark", "", 2, 2, always=True),
    Column("time", "TIME", 8, 12, always=True),  # HH:MM:SS, and .mmm when there is room
    Column("org", "ORGANISATION", 12, 36),
    Column("api", "API", 7, 14),
    Column("method", "METHOD", 6, 6, always=True),
    Column("resource", "RESOURCE/OP", 12, 48, always=True),
    Column("code", "CODE", 4, 4, always=True),
    Column("outcome", "OUTCOME", 7, 15, always=True),
    Column("findings", "FINDINGS", 8, 8, always=True),
    Column("duration", "MS", 6, 8, right=True),
    Column("size", "SIZE", 6, 7, right=True),
)
BY_KEY = {c.key: c for c in COLUMNS}

# (column, how wide: "want" = its content's width within its range, "short" = that but at most
# SHORT, "min", "max"), in the order width is handed out once every "always" column has its
# minimum. A column not yet shown comes in only if all of that width fits, and once one does not,
# no later one comes in either (so widening a terminal never makes a column go); one already
# shown grows as far as the width left allows.
CLAIMS: tuple[tuple[str, str], ...] = (
    ("outcome", "want"),
    ("resource", "short"),
    ("api", "want"),
    ("org", "min"),
    ("time", "max"),
    ("duration", "want"),
    ("size", "want"),
    ("org", "want"),
    ("resource", "want"),
)
SHORT = 24  # resource/op up to here before other columns come in; past it only at the end


@dataclass(frozen=True, slots=True)
class Layout:
    widths: tuple[tuple[Column, int], ...]  # the shown columns, in display order, and their widths

    def width(self, key: str) -> int:
        return next((w for c, w in self.widths if c.key == key), 0)

    def shows(self, key: str) -> bool:
        return self.width(key) > 0


def layout(width: int, content: Mapping[str, int]) -> Layout:
    """The columns for a list ``width`` cells wide whose widest cells are ``content`` (by key)."""

    def want(c: Column) -> int:
        return max(c.min, min(c.max, max(content.get(c.key, 0), len(c.title))))

    sizes = {c.key: c.min for c in COLUMNS if c.always}
    left = width - sum(sizes.values()) - SEP * (len(sizes) - 1)
    if left < 0:  # narrower than the essentials: resource/op gives way first, then the cut is at the edge
        sizes["resource"] = max(4, sizes["resource"] + left)
        left = 0
    closed = False  # a column did not fit: none after it comes in
    for key, how in CLAIMS:
        c = BY_KEY[key]
        target = {"want": want(c), "short": min(want(c), SHORT), "min": c.min, "max": c.max}[how]
        if key in sizes:
            grow = min(max(0, target - sizes[key]), left)
            sizes[key] += grow
            left -= grow
        elif not closed and target + SEP <= left:
            sizes[key] = target
            left -= target + SEP
        else:
            closed = True
    return Layout(tuple((c, sizes[c.key]) for c in COLUMNS if c.key in sizes))


def fit(text: str, width: int, right: bool = False) -> str:
    """``text`` in exactly ``width`` cells: cut with an ellipsis, or padded."""
    if len(text) > width:
        return text[: width - 1] + "…" if width > 1 else text[:width]
    return text.rjust(width) if right else text.ljust(width)
