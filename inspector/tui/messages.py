"""Messages the browser's workers and widgets post: results come back as data, never as calls."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from inspector.store.browse import FlowQuery, ListedFlow, RecorderStatus, TenantStats
from inspector.store.flows import StoredFlow
from inspector.store.pauses import Paused
from inspector.tui.columns import Layout
from inspector.tui.document import Document


@dataclass
class ColumnsChanged(Message):
    """The list's columns changed (a resize, wider content): the header follows."""

    columns: Layout


@dataclass
class PageLoaded(Message):
    generation: int
    page: int
    rows: list[ListedFlow]


@dataclass
class FilterPreview(Message):
    """The first rows a new filter shows, read before it is counted (counting a million rows
    takes longer than reading a page): the newest, or those up to the selected flow."""

    generation: int
    query: FlowQuery
    rows: list[ListedFlow]
    cursor: int
    max_id: int


@dataclass
class FilterApplied(Message):
    """A filter was counted: the list starts over with it."""

    generation: int
    query: FlowQuery
    total: int
    max_id: int
    cursor: int | None  # where the previously selected flow now is, if it is still shown
    tail: list[ListedFlow]  # the newest rows up to max_id, when the preview read them (else [])


@dataclass
class FilterFailed(Message):
    expr: str
    error: str
    generation: int = -1  # the filter_seq it ran under; -1 for one that never ran (did not parse)


@dataclass
class Polled(Message):
    """What changed in the file since the last poll (another process records into it)."""

    generation: int
    added: int
    max_id: int
    recorder: RecorderStatus | None
    names: dict[str, str | None]
    paused: list[Paused]  # calls a proxy holds at a breakpoint


@dataclass
class DetailLoaded(Message):
    flow: StoredFlow
    request: Document
    response: Document
    pretty: bool | None


@dataclass
class FlowHighlighted(Message):
    flow_id: int | None


@dataclass
class FlowChosen(Message):
    flow_id: int


@dataclass
class StatsLoaded(Message):
    stats: list[TenantStats]
    now: float
    live: bool
