"""``etika sync run`` and ``etika sync status``: the outbox to the platform, from outside.

``run`` wires the pieces together — the store's outbox, the key store's signer, MQTT (with
the HTTPS fallback) from the profile's ``[sync]`` section, and the downlink handler — and
drains the platform destination with a progress bar; ``--once`` stops when nothing is due,
otherwise it keeps syncing (and applying downlinks) until interrupted.

The ``platform`` destination travels over these links; each ``psp:<connector>`` of the
profile goes through its PSP connector (``edge_sync.connectors.PspOutboxTransport``);
``pop`` rows wait for the PoP client. ``status`` shows every destination.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import time
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

from etika_argtypes import CommandGroups, business_date, seconds
from terminal.cli.context import CliContext

# The sync, rich and the store are imported by the commands that use them: `sync run`
# installs its SIGTERM handler before it pays for them (a stop in its first moments must
# still end with a summary, not kill it).
if TYPE_CHECKING:
    from edge_sync.json_types import JsonValue
    from edge_sync.outbox import DestinationStatusRow
    from edge_sync.worker import DrainReport
    from terminal.services import TerminalServices
    from terminal.services.sync import SyncOptions

PLATFORM = "platform"

__all__ = ["register"]


def register(groups: CommandGroups) -> None:
    sync = groups.add_parser("sync", help="store-and-forward to the platform (MQTT / HTTPS)")
    commands = sync.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser("run", help="drain the outbox to the platform and apply downlinks")
    run.add_argument("--once", action="store_true", help="stop when nothing is due")
    run.add_argument("--json", action="store_true", help="print the drain report as JSON")
    run.add_argument(
        "--transport",
        choices=("auto", "mqtt", "https"),
        default="auto",
        help="auto: MQTT, falling back to HTTPS while the broker is unavailable",
    )
    run.add_argument(
        "--destinations",
        default="platform,psp,pop",
        metavar="LIST",
        help="what to drain: platform (MQTT/HTTPS), psp (every psp:<connector> of the "
        "profile, through its connector) and pop (the PoP back end) (default: %(default)s)",
    )
    run.add_argument(
        "--connect-timeout",
        type=seconds,
        default=5.0,
        metavar="S",
        help="how long to wait for the broker before using HTTPS (default: %(default)s)",
    )
    run.set_defaults(handler=_run)
    status = commands.add_parser(
        "status", help="depth per destination, oldest age, last success, last error"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)
    requeue = commands.add_parser(
        "requeue-dead",
        help="give dead-lettered messages another chance, once their cause is fixed",
    )
    requeue.add_argument("--destination", help="only this destination (default: all)")
    requeue.set_defaults(handler=_requeue_dead)
    eod = commands.add_parser(
        "eod",
        help="queue the day's totals per currency for the platform's reconciliation",
    )
    eod.add_argument("--date", type=business_date, default=None,
                     help="business day, YYYY-MM-DD (default: today, UTC)")
    eod.add_argument("--json", action="store_true", help="print JSON")
    eod.set_defaults(handler=_eod)


def _destinations(text: str) -> set[str]:
    wanted = {d.strip() for d in text.split(",") if d.strip()}
    if not wanted or wanted - {"platform", "psp", "pop"}:
        from terminal.cli.usage import CliUsageError

        raise CliUsageError(f"--destinations {text!r}: use a comma-separated list of "
                            "platform, psp and pop")
    return wanted





def _eod(ctx: CliContext, args: argparse.Namespace) -> int:
    day = args.date or dt.datetime.now(dt.UTC).date()
    ctx.profile()  # a broken profile is named before a missing store
    ctx.require_store()
    with ctx.services() as services:
        totals = services.end_of_day(day)
    if args.json:
        print(json.dumps({"business_date": day.isoformat(),
                          "totals": [t.as_json() for t in totals]}))
        return 0
    print(f"end of day {day.isoformat()} queued for the platform"
          + ("" if totals else ": no counted payments"))
    for total in totals:
        from terminal.money import Amount, currency

        amount = Amount(abs(total.amount_minor), currency(total.currency))
        sign = "-" if total.amount_minor < 0 else ""
        print(f"  {total.currency}  {total.count:>6} payments  {sign}{amount}")
    return 0


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _status_json(status: DestinationStatusRow) -> dict[str, JsonValue]:
    """One destination as ``sync status --json`` shows it: times as ISO 8601, ages rounded."""
    age = status["oldest_pending_age_s"]
    return {"destination": status["destination"], "depth": status["depth"],
            "pending": status["pending"], "in_flight": status["in_flight"],
            "dead": status["dead"], "delivered": status["delivered"],
            "oldest_pending_age_s": None if age is None else round(age, 3),
            "last_error": status["last_error"],
            "last_success": _iso(status["last_success_at"]),
            "last_error_time": _iso(status["last_error_at"])}


def _status(ctx: CliContext, args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from terminal.store import Store
    from terminal.store.outbox import SqliteOutbox

    with Store.open(ctx.require_store()) as store:
        statuses = [s.as_dict() for s in SqliteOutbox(store).status(time.time())]
    rows = [_status_json(status) for status in statuses]
    if args.json:
        print(json.dumps({"database": str(ctx.database_path), "destinations": rows}, indent=2))
        return 0
    if not statuses:
        print("outbox empty: nothing was ever queued")
        return 0
    table = Table(
        "destination",
        "depth",
        "dead",
        "delivered",
        "oldest",
        "last success",
        "last error",
        box=None,
    )
    for status in statuses:
        age = status["oldest_pending_age_s"]
        table.add_row(
            status["destination"],
            str(status["depth"]),
            str(status["dead"]),
            str(status["delivered"]),
            "-" if age is None else f"{age:.0f} s",
            _iso(status["last_success_at"]) or "-",
            (status["last_error"] or "-")[:60],
        )
    Console().print(table)
    return 0


def _requeue_dead(ctx: CliContext, args: argparse.Namespace) -> int:
    from terminal.store import Store
    from terminal.store.outbox import SqliteOutbox

    with Store.open(ctx.require_store()) as store:
        count = SqliteOutbox(store).requeue_dead(args.destination, time.time())
    where = f" for {args.destination}" if args.destination else ""
    print(f"sync: {count} dead message(s){where} queued again")
    return 0


class _EarlyStop:
    """SIGTERM before the event loop runs: remembered, and honoured once it does."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def _run(ctx: CliContext, args: argparse.Namespace) -> int:
    early = _EarlyStop()
    previous = signal.signal(signal.SIGTERM, early) if not args.once else None
    try:
        return _run_sync(ctx, args, early)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run_sync(ctx: CliContext, args: argparse.Namespace, early: _EarlyStop) -> int:
    import asyncio

    from terminal.services.sync import SyncOptions

    wanted = _destinations(args.destinations)  # before the key store: a typo is named first
    options = SyncOptions(once=args.once, transport=args.transport,
                          destinations=frozenset(wanted),
                          connect_timeout_s=args.connect_timeout)
    ctx.profile()  # a broken profile is named before a missing store
    ctx.require_store()
    with ctx.services() as services:
        services.signing_keys()  # a missing key store is reported before any link opens
        report = asyncio.run(_drive(services, options, quiet=args.json, early=early))
        depth = services.sync.depth({PLATFORM})
    result = {**report.as_dict(), "remaining": depth}
    failed = bool(report.errors or report.rejected or report.dead)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"sync: {report.delivered} delivered, {report.rejected} rejected, "
            f"{report.retried} to retry, {report.dead} dead; {depth} left for the platform"
        )
        for error in report.errors[-3:]:
            print(f"  last error: {error}")
    problem = _failure_line(report, ctx)
    if problem:
        # Monitoring reads the exit status: a run that left anything undelivered is not a
        # success, and the one line says what to look at.
        import sys

        print(f"etika: error: {problem}", file=sys.stderr)
    return 1 if failed else 0


def _failure_line(report: DrainReport, ctx: CliContext) -> str | None:
    """Why a run is not a success, in one line that names what to check (None: it is)."""
    sync, terminal_id = ctx.profile().sync, ctx.profile().terminal.terminal_id
    parts: list[str] = []
    if report.unacknowledged:
        # The platform answers nothing for a message whose signature it cannot verify (an
        # answer to a forgery could make a terminal drop its real message): a key it does
        # not hold, or one it revoked, shows here and nowhere else on this side.
        parts.append(
            f"{report.unacknowledged} message(s) were not acknowledged within "
            f"{sync.ack_timeout_s:g} s and are still in the outbox; the platform answers "
            "nothing for a message it cannot verify: check that it is running and that this "
            "terminal's signing key (`etika hsm public-key`) is the one registered there with "
            f"`etika platform register-terminal --terminal-id {terminal_id} --public-key FILE` "
            f"and not revoked (`etika platform revoke-key {terminal_id} VERSION`), then run "
            "`etika sync run` again")
    if report.rejected or report.dead:
        parts.append(
            f"{report.rejected} message(s) rejected and {report.dead} dead-lettered: "
            "`etika sync status` shows the last reason; fix its cause, then "
            "`etika sync requeue-dead`")
    if not parts and report.errors:
        parts.append(f"{report.retried} message(s) not sent, still in the outbox: "
                     f"{report.errors[-1]}")
    return "; ".join(parts) or None


async def _drive(services: TerminalServices, options: SyncOptions, *, quiet: bool,
                 early: _EarlyStop | None = None) -> DrainReport:
    """Run the sync with a progress bar on stderr; Ctrl-C / SIGTERM stop a long run, which
    then reports the totals of everything it did."""
    import asyncio

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("sync → platform"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
    )
    task = progress.add_task("drain", total=None)
    stop = asyncio.Event()
    if not options.once:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if early is not None and early.requested:
            stop.set()
    try:
        with progress:
            return await services.sync.run(
                options,
                stop=stop,
                on_total=lambda n: progress.update(task, total=n or None),
                on_progress=lambda _destination, n: progress.advance(task, n),
                on_notice=console.print,
                psp_transports=services.psp_transports,
                pop_transport=services.pop_transport,
            )
    finally:
        await _settle_payments(services)
        await services.aclose()


async def _settle_payments(services: TerminalServices) -> None:
    """Move payments on from what the drain delivered (PoP confirmed, reversal acknowledged,
    advice declined): see :func:`terminal.payments.recovery.settle`."""
    from terminal.payments.recovery import settle

    async with services.payments() as manager:
        await settle(manager)
