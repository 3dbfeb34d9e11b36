"""A read-only, virtual view of a Document: only the lines on screen are rendered."""

from __future__ import annotations

from rich.segment import Segment
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from inspector.tui.document import Document


class CodeView(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {"code-view--highlight"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.document = Document()
        self.highlight: int | None = None
        self._strips: dict[int, list[Segment]] = {}

    def show(self, document: Document) -> None:
        self.document = document
        self.highlight = None
        self._strips.clear()
        self.virtual_size = Size(document.width, len(document.lines))
        self.scroll_to(0, 0, animate=False, force=True)
        self.refresh()

    def jump(self, row: int) -> None:
        """Bring a row to the upper third of the view and highlight it."""
        self.highlight = row
        top = max(0, row - max(1, self.scrollable_content_region.height) // 3)
        self.scroll_to(0, top, animate=False, force=True)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.size.width
        base = self.rich_style
        if row >= len(self.document.lines):
            return Strip.blank(width, base)
        segments = self._strips.get(row)
        if segments is None:
            segments = list(self.document.lines[row].render(self.app.console))
            if len(self._strips) > 2000:  # a cache of what was on screen lately, not of the body
                self._strips.clear()
            self._strips[row] = segments
        if row == self.highlight:
            base = base + self.get_component_rich_style("code-view--highlight")
        line = [Segment(s.text, base + s.style if s.style else base) for s in segments]
        return Strip(line).crop_extend(scroll_x, scroll_x + width, base)
