"""The terminal's health in one line: link, outbox, last sync, key store, devices."""

from __future__ import annotations

import datetime as dt

from textual.reactive import reactive
from textual.widgets import Static

from ui.facade import Health, StatusSnapshot
from ui.i18n import Labels

__all__ = ["StatusBar", "describe_age", "render_status"]


def describe_age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} j"


def _mark(health: Health) -> str:
    if health.ok is None:
        return "[dim]?[/]"
    return "[green]✓[/]" if health.ok else "[b red]✗[/]"


def render_status(snapshot: StatusSnapshot | None, labels: Labels, now: dt.datetime) -> str:
    """The status line as Rich markup; a red item means: F9 shows why."""
    if snapshot is None:
        return f"[dim]{labels('working')}[/]"
    if snapshot.online is None:
        link = f"[dim]● {labels('unknown')}[/]"
    elif snapshot.online:
        link = f"[green]● {labels('online')}[/]"
    else:
        link = f"[b yellow]● {labels('offline')}[/]"
    if snapshot.oldest_pending_age_s is not None and snapshot.outbox_depth:
        queue = labels("queue_oldest", depth=snapshot.outbox_depth,
                       age=describe_age(snapshot.oldest_pending_age_s))
    else:
        queue = labels("queue", depth=snapshot.outbox_depth)
    synced = (snapshot.last_sync_at.astimezone(now.tzinfo).strftime("%H:%M")
              if snapshot.last_sync_at else labels("never"))
    parts = [link, queue, labels("last_sync", time=synced),
             f"{labels('reader')} {_mark(snapshot.reader)}"
             + (f" {labels('reader_' + snapshot.reader.state)}" if snapshot.reader.state
                else ""),
             f"{labels('pinpad')} {_mark(snapshot.pinpad)}",
             f"{labels('key_store')} {_mark(snapshot.key_store)}",
             f"{labels('printer')} {_mark(snapshot.printer)}"]
    if snapshot.printer.ok is False and snapshot.printer.detail:
        parts[-1] += f" [red]{snapshot.printer.detail}[/]"
    return " · ".join(parts) + f" · {now.strftime('%H:%M')}"


class StatusBar(Static):
    """Docked at the bottom of every screen; the app hands it each new snapshot."""

    snapshot: reactive[StatusSnapshot | None] = reactive(None)

    def __init__(self, labels: Labels, now: dt.datetime | None = None) -> None:
        super().__init__("", id="status-bar", markup=True)
        self._labels = labels
        self._now = now or dt.datetime.now(dt.UTC)

    def show(self, snapshot: StatusSnapshot | None, now: dt.datetime) -> None:
        self._now = now
        self.snapshot = snapshot
        self.update(render_status(snapshot, self._labels, now))

    def on_mount(self) -> None:
        self.update(render_status(self.snapshot, self._labels, self._now))
