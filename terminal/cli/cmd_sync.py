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
import asyncio
import contextlib
import datetime as dt
import json
import math
import signal
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edge_sync.downlink import DownlinkHandler
from edge_sync.errors import SyncError
from edge_sync.https import HttpsLinkSettings, HttpsTransport
from edge_sync.mqtt import MqttLinkSettings, MqttTransport
from edge_sync.outbox import RetryPolicy
from edge_sync.signing import ANNOUNCED_WITH, Signer
from edge_sync.transport import FailoverTransport, Transport
from edge_sync.worker import DrainReport, OutboxWorker, WorkerSettings
from terminal.cli.context import CliContext
from terminal.eod import report_end_of_day
from terminal.money import Amount, currency
from terminal.profile import Profile
from terminal.store import Store
from terminal.store.fleet import FleetStore
from terminal.store.outbox import SqliteOutbox
from terminal.sync_hooks import TerminalDownlinkHooks

__all__ = ["register"]

PLATFORM = "platform"
STATUS_TTL_S = 3600.0
#: How often a long-running ``sync run`` reports its backlog to the platform.
STATUS_EVERY_S = 60.0


def register(groups: Any) -> None:
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
        default="platform,psp",
        metavar="LIST",
        help="what to drain: platform (MQTT/HTTPS) and/or psp (every psp:<connector> of the "
        "profile, through its connector) (default: %(default)s)",
    )
    run.add_argument(
        "--connect-timeout",
        type=_seconds,
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
    eod.add_argument("--date", type=_business_date, default=None,
                     help="business day, YYYY-MM-DD (default: today, UTC)")
    eod.add_argument("--json", action="store_true", help="print JSON")
    eod.set_defaults(handler=_eod)


def _destinations(text: str) -> set[str]:
    wanted = {d.strip() for d in text.split(",") if d.strip()}
    if not wanted or wanted - {"platform", "psp"}:
        raise SyncError(f"--destinations {text!r}: use platform, psp or platform,psp")
    return wanted


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _business_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-22") from None


def _eod(ctx: CliContext, args: argparse.Namespace) -> int:
    profile = ctx.profile()
    day = args.date or dt.datetime.now(dt.UTC).date()
    with Store.open(ctx.database_path) as store:
        totals = report_end_of_day(store, profile.terminal.terminal_id, day)
    if args.json:
        print(json.dumps({"business_date": day.isoformat(),
                          "totals": [t.as_json() for t in totals]}))
        return 0
    print(f"end of day {day.isoformat()} queued for the platform"
          + ("" if totals else ": no counted payments"))
    for total in totals:
        amount = Amount(abs(total.amount_minor), currency(total.currency))
        sign = "-" if total.amount_minor < 0 else ""
        print(f"  {total.currency}  {total.count:>6} payments  {sign}{amount}")
    return 0


def _data_path(ctx: CliContext, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() else ctx.data_dir / path


def _worker_settings(profile: Profile) -> WorkerSettings:
    sync = profile.sync
    try:
        return WorkerSettings(
            terminal_id=profile.terminal.terminal_id,
            batch_size=sync.batch_size,
            max_in_flight=max(sync.max_in_flight, sync.batch_size),
            ack_timeout_s=sync.ack_timeout_s,
            max_bytes_per_s=sync.max_bytes_per_s,
            retry=RetryPolicy(
                base_s=sync.retry_base_s,
                cap_s=max(sync.retry_cap_s, sync.retry_base_s),
                max_attempts=sync.max_attempts,
            ),
        )
    except ValueError as exc:
        raise SyncError(f"[sync] settings of {profile.directory}: {exc}") from exc


def _platform_key(profile: Profile) -> bytes | None:
    name = profile.sync.platform_public_key
    return None if name is None else (profile.directory / name).read_bytes()


def _open_signer(ctx: CliContext, store: Store) -> tuple[Signer, Any]:
    from hsm import KeyPurpose
    from terminal.cli.cmd_hsm import open_key_store

    keystore = open_key_store(ctx, store)
    return keystore.signer(), (keystore, KeyPurpose.SIGNING)


def _status_rows(store: Store) -> list[dict[str, Any]]:
    return [s.as_dict() for s in SqliteOutbox(store).status(time.time())]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _status(ctx: CliContext, args: argparse.Namespace) -> int:
    with Store.open(ctx.database_path) as store:
        rows = _status_rows(store)
    for row in rows:
        row["last_success"] = _iso(row.pop("last_success_at"))
        row["last_error_time"] = _iso(row.pop("last_error_at"))
        if row["oldest_pending_age_s"] is not None:
            row["oldest_pending_age_s"] = round(row["oldest_pending_age_s"], 3)
    if args.json:
        print(json.dumps({"database": str(ctx.database_path), "destinations": rows}, indent=2))
        return 0
    if not rows:
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
    for row in rows:
        age = row["oldest_pending_age_s"]
        table.add_row(
            row["destination"],
            str(row["depth"]),
            str(row["dead"]),
            str(row["delivered"]),
            "-" if age is None else f"{age:.0f} s",
            row["last_success"] or "-",
            (row["last_error"] or "-")[:60],
        )
    Console().print(table)
    return 0


def _requeue_dead(ctx: CliContext, args: argparse.Namespace) -> int:
    with Store.open(ctx.database_path) as store:
        count = SqliteOutbox(store).requeue_dead(args.destination, time.time())
    where = f" for {args.destination}" if args.destination else ""
    print(f"sync: {count} dead message(s){where} queued again")
    return 0


def _queue_status_report(outbox: SqliteOutbox, store: Store) -> None:
    """Tell the platform the backlog per destination (its fleet API shows it): ahead of the
    transactions (priority 50), and dropped after an hour if it could not be sent."""
    backlog = {row["destination"]: row["depth"] for row in _status_rows(store)}
    now = time.time()
    outbox.enqueue(
        PLATFORM,
        "status",
        {"backlog": backlog},
        f"status:{now:.3f}",
        now,
        priority=50,
        ttl_s=STATUS_TTL_S,
    )


def _diagnostics(profile: Profile, store: Store, mqtt: MqttTransport | None) -> Mapping[str, Any]:
    return {
        "terminal_id": profile.terminal.terminal_id,
        "schema_version": store.schema_version(),
        "outbox": _status_rows(store),
        "mqtt": None
        if mqtt is None
        else {"connected": mqtt.connected, "last_error": mqtt.last_error},
    }


def _run(ctx: CliContext, args: argparse.Namespace) -> int:
    _destinations(args.destinations)  # before the key store: a typo is named first
    profile = ctx.profile()
    with Store.open(ctx.database_path) as store:
        signer, (keystore, signing) = _open_signer(ctx, store)
        try:
            report = asyncio.run(_drive(ctx, args, profile, store, signer, keystore, signing))
        finally:
            keystore.close()
        depth = sum(r["depth"] for r in _status_rows(store) if r["destination"] == PLATFORM)
    result = {**report.as_dict(), "remaining": depth}
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"sync: {report.delivered} delivered, {report.rejected} rejected, "
            f"{report.retried} to retry, {report.dead} dead; {depth} left for the platform"
        )
        for error in report.errors[-3:]:
            print(f"  last error: {error}")
    return 0 if not report.errors else 1


async def _drive(
    ctx: CliContext,
    args: argparse.Namespace,
    profile: Profile,
    store: Store,
    signer: Signer,
    keystore: Any,
    signing: Any,
) -> DrainReport:
    sync = profile.sync
    terminal_id = profile.terminal.terminal_id
    wanted = _destinations(args.destinations)
    outbox = SqliteOutbox(store)
    worker: OutboxWorker | None = None
    mqtt: MqttTransport | None = None

    def rotate() -> Mapping[str, Any]:
        previous = keystore.signing_key_version
        version = keystore.rotate(signing)
        return {"key_version": version, "public_key_pem": keystore.public_key_pem().decode(),
                ANNOUNCED_WITH: previous}

    hooks = TerminalDownlinkHooks(
        FleetStore(store),
        profile.directory,
        rotate_keys=rotate,
        diagnostics=lambda: _diagnostics(profile, store, mqtt),
    )
    platform_key = _platform_key(profile)
    # Without a platform key every downlink is refused (and the platform told why).
    handler = DownlinkHandler(
        platform_key, hooks, outbox, on_sync_now=lambda: worker.wake() if worker else None
    )
    transports: list[Transport] = []
    console = Console(stderr=True)
    async with contextlib.AsyncExitStack() as stack:
        if args.transport in ("auto", "mqtt"):
            link = MqttLinkSettings(
                terminal_id=terminal_id,
                host=sync.mqtt_host,
                port=sync.mqtt_port,
                ca_file=_data_path(ctx, sync.ca_file) if sync.mqtt_tls else None,
                cert_file=_data_path(ctx, sync.cert_file) if sync.mqtt_tls else None,
                key_file=_data_path(ctx, sync.key_file) if sync.mqtt_tls else None,
            )
            link_transport = await stack.enter_async_context(
                MqttTransport(
                    link,
                    on_downlink=handler.handle,
                    on_late_ack=lambda ack: worker.late_ack(ack) if worker else None,
                )
            )
            mqtt = link_transport
            if not await link_transport.wait_connected(args.connect_timeout):
                console.print(
                    f"sync: MQTT broker {sync.mqtt_host}:{sync.mqtt_port} not reachable"
                    + (f" ({link_transport.last_error})" if link_transport.last_error else "")
                )
            transports.append(link_transport)
        if args.transport in ("auto", "https") and sync.https_url:
            https = HttpsTransport(
                HttpsLinkSettings(
                    terminal_id=terminal_id,
                    base_url=sync.https_url,
                    ca_file=_data_path(ctx, sync.ca_file),
                    cert_file=_data_path(ctx, sync.cert_file),
                    key_file=_data_path(ctx, sync.key_file),
                )
            )
            transports.append(await stack.enter_async_context(https))
        if not transports:
            raise SyncError(
                f"no transport to use: --transport {args.transport} but the profile's [sync] "
                "has no https_url; set one or use --transport mqtt"
            )
        routes: dict[str, Transport] = {PLATFORM: FailoverTransport(transports)}
        if "psp" in wanted:
            routes.update(await _psp_transports(profile, stack))
        if "platform" not in wanted:
            del routes[PLATFORM]
        if PLATFORM in routes:
            await asyncio.to_thread(_queue_status_report, outbox, store)
        depth = sum(r["depth"] for r in _status_rows(store) if r["destination"] in routes)
        progress = Progress(
            TextColumn("sync → platform"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=args.json or not console.is_terminal,
        )
        task = progress.add_task("drain", total=depth or None)
        worker = OutboxWorker(
            outbox,
            routes,
            signer,
            _worker_settings(profile),
            on_progress=lambda _destination, n: progress.advance(task, n),
        )
        try:
            with progress:
                if args.once:
                    return await worker.drain()
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                async with asyncio.TaskGroup() as group:
                    group.create_task(worker.run(stop), name="sync-worker")
                    if PLATFORM in routes:
                        group.create_task(
                            _report_status(outbox, store, worker, stop),
                            name="sync-status-report",
                        )
                return DrainReport()
        finally:
            worker.close()


async def _psp_transports(
    profile: Profile, stack: contextlib.AsyncExitStack
) -> dict[str, Transport]:
    """``psp:<name>`` → the PSP engineer's outbox transport over the profile's router."""
    from edge_sync.connectors import PspOutboxTransport
    from terminal.psp_routing import build_router

    router = build_router(profile)
    stack.push_async_callback(router.aclose)
    return {f"psp:{name}": PspOutboxTransport(router, name) for name in router.connectors}


async def _report_status(
    outbox: SqliteOutbox, store: Store, worker: OutboxWorker, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STATUS_EVERY_S)
        if not stop.is_set():
            await asyncio.to_thread(_queue_status_report, outbox, store)
            worker.wake()
