"""The flow list: a virtual list over SQLite that only ever holds the pages on screen.

Rows are drawn with the Line API; a row not yet read shows as a dim placeholder while a
worker reads its page. Pages next to a loaded page are read by keyset; a jump (End, a
drag of the scrollbar) reads by OFFSET once and keysets from there.
"""

from __future__ import annotations

from collections import OrderedDict

from rich.segment import Segment
from rich.text import Text
from textual import events, work
from textual.binding import Binding
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from inspector.store.browse import FlowQuery, ListedFlow, Reader, org_label, resource_label
from inspector.tui.columns import Layout, fit, layout
from inspector.tui.info import time_of_day
from inspector.tui.messages import ColumnsChanged, FlowChosen, FlowHighlighted, PageLoaded
from inspector.utils.text import safe

PAGE = 100
MAX_PAGES = 30  # 3,000 rows in memory at most, whatever the database holds
OUTCOME_STYLE = {
    "ok": "green",
    "api-error": "bold red",
    "http-error": "red",
    "rate-limited": "bold magenta",
    "transport-error": "bold bright_red",
}


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 1024:
        return f"{n}B"
    size = n / 1024
    for unit in "KMG":
        if size < 1024 or unit == "G":
            return f"{size:.1f}{unit}" if size < 10 else f"{size:.0f}{unit}"
        size /= 1024
    raise AssertionError("unreachable")


def content_widths(rows: list[ListedFlow], names: dict[str, str | None]) -> dict[str, int]:
    """The widest cell of each column whose width follows its content."""
    return {
        "org": max((len(org_label(r, names)) for r in rows), default=0),
        "api": max((len(r.family or "-") for r in rows), default=0),
        "resource": max((len(resource_label(r)) for r in rows), default=0),
        "outcome": max((len(r.outcome) for r in rows), default=0),
    }


def header_text(cols: Layout) -> Text:
    """The column titles, over the list's own columns."""
    return Text(" ".join(fit(c.title, w, c.right) for c, w in cols.widths), style="bold")


def row_text(row: ListedFlow, names: dict[str, str | None], cols: Layout) -> Text:
    """One row: a cell for each column the layout shows, in its width."""
    style = OUTCOME_STYLE.get(row.outcome, "")
    findings = Text(" ").join(
        Text(text, st)
        for n, text, st in ((row.errors, f"{row.errors}E", "bold red"), (row.warnings, f"{row.warnings}W", "yellow"))
        if n
    )
    cells = {
        "mark": Text(
            ("●" if row.marked else " ") + ("✎" if row.comment else "↻" if row.replay_of else " "), "bold magenta"
        ),
        "time": Text(time_of_day(row.started_at, ms=cols.width("time") >= 12), "dim"),  # .mmm if room
        "org": Text(org_label(row, names), "cyan"),
        "api": Text(row.family or "-"),
        "method": Text(safe(row.method), "bold"),
        "resource": Text(resource_label(row)),
        "code": Text(str(row.status) if row.status is not None else "---", style),
        "outcome": Text(row.outcome, style),
        "findings": findings,
        "duration": Text(f"{row.duration_ms:.0f}" if row.duration_ms is not None else "-", "dim"),
        "size": Text(human_size(row.response_size), "dim"),
    }
    out = []
    for col, width in cols.widths:
        cell = cells[col.key]
        if col.right and cell.cell_len < width:
            cell.pad_left(width - cell.cell_len)
        cell.truncate(width, overflow="ellipsis", pad=True)
        out.append(cell)
    return Text(" ").join(out)


class FlowList(ScrollView, can_focus=True):
    """Every flow the filter matches, in arrival order; ``cursor`` is the selected position."""

    COMPONENT_CLASSES = {"flow-list--cursor", "flow-list--placeholder"}
    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "move_page(-1)", "Page up", show=False),
        Binding("pagedown,space", "move_page(1)", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("enter", "choose", "Detail"),
    ]
    cursor: reactive[int] = reactive(-1, always_update=True, init=False)

    def __init__(self, reader: Reader, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.reader = reader
        self.flow_query = FlowQuery("")
        self.total = 0
        self.counted = True  # False while a new filter shows its first rows, not yet counted
        self.upto = 0  # the highest flow id counted into total
        self.generation = 0
        self.names: dict[str, str | None] = {}
        self.pages: OrderedDict[int, list[ListedFlow]] = OrderedDict()
        self.pending: set[int] = set()
        self._highlighted: int | None = None
        # While a preview is shown: where its cursor opened, and a jump asked for meanwhile
        # (a place in the whole list, which only the count can give a row).
        self._anchor = 0
        self._wanted: int | None = None
        # The widest cells seen so far, by column: they only grow, so columns do not jump
        # about as the list scrolls or a filter changes.
        self.content: dict[str, int] = {}
        self.columns = layout(80, self.content)

    # -- data -------------------------------------------------------------------------
    def reset(
        self, query: FlowQuery, total: int, upto: int, cursor: int | None, tail: list[ListedFlow] | None = None
    ) -> None:
        """Start over: a new filter, or rows deleted. ``tail``, the newest rows up to ``upto``
        if already read, fills the last page so the end of the list paints at once."""
        self.generation += 1
        self.flow_query = query
        self.total = total
        self.counted = True
        self.upto = upto
        self.pages.clear()
        self.pending.clear()
        last = (total - 1) % PAGE + 1  # rows on the last page
        if tail and total and len(tail) >= last:
            self.pages[(total - 1) // PAGE] = tail[-last:]
            self._measure(tail[-last:])
        self.virtual_size = Size(0, total)
        self.cursor = (total - 1) if cursor is None else min(cursor, total - 1)
        self._show_cursor()
        self.refresh()

    def preview(self, query: FlowQuery, rows: list[ListedFlow], cursor: int, upto: int) -> None:
        """A new filter's first rows, shown as the whole list until settle() brings the count."""
        self.reset(query, len(rows), upto, cursor, rows)
        self.counted = False
        self._anchor, self._wanted = cursor, None

    def settle(self, query: FlowQuery, total: int, upto: int, cursor: int | None, tail: list[ListedFlow]) -> None:
        """The count behind the preview: its rows take their place in the whole list, ending at
        ``cursor`` (the flow kept) or at the newest. Where the user moved meanwhile, by keys or
        by a jump, is kept: the count must not pull the cursor back from under them."""
        anchor = total - 1 if cursor is None else cursor
        if self._wanted is not None:
            cursor = self._wanted
        elif not self.counted:
            cursor = anchor + (self.cursor - self._anchor)
        self._wanted = None
        self.reset(query, total, upto, cursor, tail)

    def jump(self, index: int) -> None:
        """Move to a place in the whole filtered list (a flow id looked up by the app)."""
        if self.counted:
            self.move_to(index)
        else:  # the preview holds only its own rows: the count will put the cursor there
            self._wanted = index

    def grow(self, added: int, upto: int) -> None:
        """Rows arrived at the end; the last page may have been partial."""
        self.upto = upto
        if added <= 0:
            return
        self.pages.pop((self.total - 1) // PAGE if self.total else 0, None)
        self.total += added
        self.virtual_size = Size(0, self.total)
        if self.cursor < 0:  # the first flows in an empty list: select the first, so Enter, c and r act
            self.cursor = 0
        self.refresh()

    def forget(self) -> None:
        """Rows changed in place (marked, revalidated): read the pages on screen again."""
        self.pages.clear()
        self.refresh()

    def set_names(self, names: dict[str, str | None]) -> None:
        """Organisation names changed (a GET /connections was recorded): measure them again."""
        self.names = names
        for rows in self.pages.values():
            self._measure(rows)
        self.refresh()

    def _measure(self, rows: list[ListedFlow]) -> None:
        seen = content_widths(rows, self.names)
        if any(w > self.content.get(k, 0) for k, w in seen.items()):
            self.content = {k: max(w, self.content.get(k, 0)) for k, w in seen.items()}
            self._relayout()

    def _relayout(self) -> None:
        cols = layout(self.scrollable_content_region.width, self.content)
        if cols != self.columns:
            self.columns = cols
            self.refresh()
            self.post_message(ColumnsChanged(cols))

    def row_at(self, index: int) -> ListedFlow | None:
        rows = self.pages.get(index // PAGE)
        if rows is None or index % PAGE >= len(rows):
            return None
        return rows[index % PAGE]

    @property
    def selected(self) -> ListedFlow | None:
        return self.row_at(self.cursor) if self.cursor >= 0 else None

    def _want(self, page: int) -> None:
        if page not in self.pages and page not in self.pending and 0 <= page * PAGE < max(self.total, 1):
            self.pending.add(page)
            self.load_page(page, self.generation)

    @work(thread=True, group="pages", exit_on_error=False)
    def load_page(self, page: int, generation: int) -> None:
        before, after = self.pages.get(page - 1), self.pages.get(page + 1)
        with self.reader.conn() as conn:
            if before and len(before) == PAGE:
                rows = self.flow_query.after(conn, before[-1].id, PAGE)
            elif after:
                rows = self.flow_query.before(conn, after[0].id, PAGE)
            elif (page + 1) * PAGE >= self.total:  # the end: newest first is an index walk back
                rows = self.flow_query.last(conn, self.total - page * PAGE, self.upto)
            else:
                rows = self.flow_query.at(conn, page * PAGE, PAGE)
        self.post_message(PageLoaded(generation, page, rows))

    def on_page_loaded(self, message: PageLoaded) -> None:
        message.stop()
        if message.generation != self.generation:
            return
        self.pending.discard(message.page)
        self.pages[message.page] = message.rows
        self._measure(message.rows)
        self.pages.move_to_end(message.page)
        while len(self.pages) > MAX_PAGES:
            self.pages.popitem(last=False)
        self.refresh()
        self._announce()

    # -- drawing ----------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        if index >= self.total:
            return Strip.blank(width)
        row = self.row_at(index)
        if row is None:
            self._want(index // PAGE)
            style = self.get_component_rich_style("flow-list--placeholder")
            return Strip([Segment(" …", style)]).extend_cell_length(width, style)
        self.pages.move_to_end(index // PAGE)
        text = row_text(row, self.names, self.columns)
        base = self.rich_style
        if index == self.cursor:
            base = base + self.get_component_rich_style("flow-list--cursor")
        segments = [Segment(s.text, base + s.style if s.style else base) for s in text.render(self.app.console)]
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, base)

    def on_resize(self) -> None:
        self.virtual_size = Size(0, self.total)
        self._relayout()

    # -- moving -----------------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh()
        self._announce()

    def _announce(self) -> None:
        row = self.selected
        fid = row.id if row else None
        if fid != self._highlighted and (row is not None or self.total == 0):
            self._highlighted = fid
            self.post_message(FlowHighlighted(fid))

    def _show_cursor(self) -> None:
        height = max(1, self.scrollable_content_region.height)
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, force=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, force=True)
        # Textual moves the scrollbar's thumb with scroll_y only while the bar is shown: when a
        # new list scrolls before its bar appears, the thumb would sit at the top, misleading.
        self.call_after_refresh(self._sync_scrollbar)

    def _sync_scrollbar(self) -> None:
        if self.show_vertical_scrollbar:
            self.vertical_scrollbar.position = self.scroll_y

    def move_to(self, index: int) -> None:
        if self.total:
            self.cursor = max(0, min(self.total - 1, index))
            self._show_cursor()

    def action_move(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_move_page(self, pages: int) -> None:
        self.move_to(self.cursor + pages * max(1, self.scrollable_content_region.height - 1))

    def action_first(self) -> None:
        self.move_to(0)

    def action_last(self) -> None:
        self.move_to(self.total - 1)

    def action_choose(self) -> None:
        if (row := self.selected) is not None:
            self.post_message(FlowChosen(row.id))

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_y) + event.y
        if 0 <= index < self.total:
            self.move_to(index)
            if event.chain >= 2:
                self.action_choose()
