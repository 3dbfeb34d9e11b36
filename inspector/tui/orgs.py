"""The organisations panel: calls, remaining limits, a sparkline of the minute limit, 429s."""

from __future__ import annotations

import time

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Sparkline, Static

from inspector.store.browse import Reader, TenantStats, clock, recorder_status, tenant_stats
from inspector.tui.info import escape
from inspector.tui.messages import StatsLoaded

REFRESH_S = 2.0


def stats_markup(s: TenantStats) -> str:
    # Unnamed (no GET /connections recorded, or a Customer API key's fingerprint): the id once.
    title = (
        f"[b cyan]{escape(s.name)}[/]  [dim]{escape(s.tenant_id)}[/]" if s.name else f"[b cyan]{escape(s.tenant_id)}[/]"
    )
    minute = "-" if s.minute_remaining is None else str(s.minute_remaining)
    day = "-" if s.day_remaining is None else f"{s.day_remaining:,}"
    low = s.minute_remaining is not None and s.minute_remaining <= 5
    limited = f"[bold red]{s.rate_limited} × 429[/]" if s.rate_limited else "no 429s"
    if not s.minute_series:
        limited += "   [dim]no rate-limit headers recorded[/]"
    return (
        f"{title}\n"
        f"calls: {s.calls_minute} last minute · {s.calls_day:,} last day · {s.calls:,} recorded   {limited}\n"
        f"remaining: minute {'[bold red]' + minute + '[/]' if low else minute} · day {day}"
    )


def _card() -> Vertical:
    # min per column: the lowest remaining figure is the one that matters
    return Vertical(Static(classes="org-text"), Sparkline([], summary_function=min), classes="org")


class OrganisationsScreen(Screen[None]):
    BINDINGS = [Binding("escape,o,q", "app.pop_screen", "Back to flows")]

    def __init__(self, reader: Reader) -> None:
        super().__init__()
        self.reader = reader

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Organisations", id="orgs-title")
        yield VerticalScroll(id="orgs")
        yield Footer()

    def on_mount(self) -> None:
        self.load()
        self.set_interval(REFRESH_S, self.load)

    @work(thread=True, exclusive=True, group="orgs", exit_on_error=False)
    def load(self) -> None:
        with self.reader.conn() as conn:
            status = recorder_status(conn)
            live = bool(status and status.live)
            now = clock(conn, live)
            stats = tenant_stats(conn, now)
        self.post_message(StatsLoaded(stats, now, live))

    async def on_stats_loaded(self, message: StatsLoaded) -> None:
        last = time.strftime("%H:%M:%S", time.localtime(message.now))
        when = "now" if message.live else f"the last recorded call, {last}"
        self.query_one("#orgs-title", Static).update(
            f"[b]Organisations[/]: {len(message.stats)}; minute and day counted back from {when}.  "
            "[dim]Sparkline: X-MinLimit-Remaining, oldest to newest (lowest per column).[/]"
        )
        box = self.query_one("#orgs", VerticalScroll)
        cards = list(box.query(Vertical))
        if len(cards) != len(message.stats):
            await box.remove_children()
            cards = [_card() for _ in message.stats]
            await box.mount_all(cards)
        for card, s in zip(cards, message.stats, strict=True):
            card.query_one(".org-text", Static).update(stats_markup(s))
            spark = card.query_one(Sparkline)
            # No series: no sparkline, rather than a full bar that reads as "plenty left".
            spark.display = bool(s.minute_series)
            spark.data = [float(x) for x in s.minute_series]
