"""Store-and-forward, wired: the outbox worker, its transports and the downlink handler.

``platform`` travels over MQTT with the HTTPS fallback (the profile's ``[sync]``); each
``psp:<connector>`` goes through its PSP connector
(:class:`edge_sync.connectors.PspOutboxTransport`). Downlinks are applied through
:class:`terminal.sync_hooks.TerminalDownlinkHooks`; key rotation asked by the platform goes
to the key store's signing key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

from edge_sync.downlink import DownlinkHandler
from edge_sync.errors import SyncError
from edge_sync.https import HttpsLinkSettings, HttpsTransport
from edge_sync.json_types import JsonObject, JsonValue
from edge_sync.mqtt import MqttLinkSettings, MqttTransport
from edge_sync.outbox import DestinationStatusRow, RetryPolicy
from edge_sync.signing import ANNOUNCED_WITH, Signer
from edge_sync.transport import FailoverTransport, Transport
from edge_sync.worker import DrainReport, OutboxWorker, WorkerSettings
from etika_errors import EtikaError
from terminal.profile import Profile
from terminal.store import Store
from terminal.store.checkpoints import checkpoint_if_due
from terminal.store.fleet import FleetStore
from terminal.store.outbox import SqliteOutbox
from terminal.sync_hooks import TerminalDownlinkHooks

__all__ = ["PLATFORM", "SigningKeys", "SyncOptions", "SyncService", "worker_settings"]

log = logging.getLogger(__name__)

PLATFORM = "platform"
STATUS_TTL_S = 3600.0
#: How often a long-running sync reports its backlog to the platform.
STATUS_EVERY_S = 60.0
#: How often a long-running sync looks whether a journal checkpoint is due
#: (``[sync] journal_checkpoint_interval_s`` says how old the last one may grow).
CHECKPOINT_CHECK_EVERY_S = 60.0
DESTINATION_GROUPS = frozenset({"platform", "psp", "pop"})


class SigningKeys(Protocol):
    """The terminal's signing key as the sync needs it (the key store satisfies it)."""

    @property
    def signing_key_version(self) -> int: ...

    def signer(self) -> Signer: ...

    def rotate_signing(self) -> int:
        """Make a new signing key version current; returns it."""
        ...

    def public_key_pem(self, version: int | None = None) -> bytes: ...


@dataclass(frozen=True)
class SyncOptions:
    """What one sync run does."""

    once: bool = True
    transport: str = "auto"  # auto | mqtt | https
    destinations: frozenset[str] = field(
        default_factory=lambda: frozenset({"platform", "psp", "pop"}))
    connect_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.transport not in ("auto", "mqtt", "https"):
            raise ValueError(f"transport {self.transport!r}: use auto, mqtt or https")
        if not self.destinations or self.destinations - DESTINATION_GROUPS:
            raise ValueError(f"destinations {sorted(self.destinations)}: use "
                             + ", ".join(sorted(DESTINATION_GROUPS)))


def worker_settings(profile: Profile) -> WorkerSettings:
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


class SyncService:
    """Drains the outbox and applies downlinks; also the outbox's status and dead letters."""

    def __init__(self, profile: Profile, data_dir: Path, store: Store,
                 signing_keys: Callable[[], SigningKeys]) -> None:
        self._profile = profile
        self._data_dir = data_dir
        self._store = store
        self._signing_keys = signing_keys
        self.outbox = SqliteOutbox(store)
        self.mqtt: MqttTransport | None = None

    # --- status ------------------------------------------------------------------------

    def status_rows(self) -> list[DestinationStatusRow]:
        return [s.as_dict() for s in self.outbox.status(time.time())]

    def depth(self, destinations: set[str] | None = None) -> int:
        return sum(r["depth"] for r in self.status_rows()
                   if destinations is None or r["destination"] in destinations)

    def requeue_dead(self, destination: str | None) -> int:
        return self.outbox.requeue_dead(destination, time.time())

    def queue_status_report(self) -> None:
        """Tell the platform the backlog per destination (its fleet API shows it): ahead of
        the transactions (priority 50), dropped after an hour if it could not be sent."""
        backlog = {row["destination"]: row["depth"] for row in self.status_rows()}
        now = time.time()
        self.outbox.enqueue(PLATFORM, "status", {"backlog": backlog}, f"status:{now:.3f}",
                            now, priority=50, ttl_s=STATUS_TTL_S)

    def diagnostics(self) -> JsonObject:
        return {
            "terminal_id": self._profile.terminal.terminal_id,
            "schema_version": self._store.schema_version(),
            # Every field of a status row is a JSON scalar; the cast only bridges typing's
            # rule that a TypedDict is a Mapping[str, object], never a Mapping of JSON.
            "outbox": cast(JsonValue, self.status_rows()),
            "mqtt": None if self.mqtt is None
            else {"connected": self.mqtt.connected, "last_error": self.mqtt.last_error},
        }

    # --- running -----------------------------------------------------------------------

    def _data_path(self, value: str | None) -> Path | None:
        if value is None:
            return None
        path = Path(value)
        return path if path.is_absolute() else self._data_dir / path

    def _platform_key(self) -> bytes | None:
        name = self._profile.sync.platform_public_key
        return None if name is None else (self._profile.directory / name).read_bytes()

    async def run(
        self,
        options: SyncOptions,
        *,
        stop: asyncio.Event | None = None,
        on_total: Callable[[int], None] = lambda _n: None,
        on_progress: Callable[[str, int], None] = lambda _d, _n: None,
        on_notice: Callable[[str], None] = lambda _m: None,
        psp_transports: Callable[[contextlib.AsyncExitStack],
                                 Awaitable[dict[str, Transport]]] | None = None,
        pop_transport: Callable[[contextlib.AsyncExitStack],
                                Awaitable[Transport]] | None = None,
    ) -> DrainReport:
        """Drain once (``options.once``) or until ``stop`` is set, applying downlinks.

        ``psp_transports(stack)`` is awaited for ``{"psp:<name>": Transport}`` when PSP
        destinations are wanted; ``pop_transport(stack)`` for destination ``pop``.
        """
        profile, sync = self._profile, self._profile.sync
        terminal_id = profile.terminal.terminal_id
        keys = self._signing_keys()
        signer = keys.signer()
        worker: OutboxWorker | None = None

        def rotate() -> JsonObject:
            previous = keys.signing_key_version
            version = keys.rotate_signing()
            return {"key_version": version, "public_key_pem": keys.public_key_pem().decode(),
                    ANNOUNCED_WITH: previous}

        hooks = TerminalDownlinkHooks(FleetStore(self._store), profile.directory,
                                      rotate_keys=rotate, diagnostics=self.diagnostics)
        # Without a platform key every downlink is refused (and the platform told why).
        handler = DownlinkHandler(self._platform_key(), hooks, self.outbox,
                                  terminal_id=terminal_id,
                                  on_sync_now=lambda: worker.wake() if worker else None)
        transports: list[Transport] = []
        # The platform's links (and their TLS files) only when the platform is drained:
        # ``--destinations psp,pop`` needs neither broker nor certificate.
        platform_wanted = PLATFORM in options.destinations
        async with contextlib.AsyncExitStack() as stack:
            if platform_wanted and options.transport in ("auto", "mqtt"):
                link = MqttLinkSettings(
                    terminal_id=terminal_id, host=sync.mqtt_host, port=sync.mqtt_port,
                    ca_file=self._data_path(sync.ca_file) if sync.mqtt_tls else None,
                    cert_file=self._data_path(sync.cert_file) if sync.mqtt_tls else None,
                    key_file=self._data_path(sync.key_file) if sync.mqtt_tls else None,
                    # Acks are signed by the platform: without its key none settles a row.
                    platform_public_key=self._platform_key(),
                )
                mqtt = await stack.enter_async_context(MqttTransport(
                    link, on_downlink=handler.handle,
                    on_late_ack=lambda ack: worker.late_ack(ack) if worker else None,
                ))
                self.mqtt = mqtt
                if not await mqtt.wait_connected(options.connect_timeout_s):
                    on_notice(f"sync: MQTT broker {sync.mqtt_host}:{sync.mqtt_port} not "
                              "reachable" + (f" ({mqtt.last_error})" if mqtt.last_error else ""))
                transports.append(mqtt)
            if platform_wanted and options.transport in ("auto", "https") and sync.https_url:
                https = HttpsTransport(HttpsLinkSettings(
                    terminal_id=terminal_id, base_url=sync.https_url,
                    ca_file=self._data_path(sync.ca_file),
                    cert_file=self._data_path(sync.cert_file),
                    key_file=self._data_path(sync.key_file),
                    platform_public_key=self._platform_key(),
                ))
                transports.append(await stack.enter_async_context(https))
            if not transports and PLATFORM in options.destinations:
                raise SyncError(
                    f"no transport to use: --transport {options.transport} but the profile's "
                    "[sync] has no https_url; set one or use --transport mqtt")
            routes: dict[str, Transport] = {}
            if PLATFORM in options.destinations:
                routes[PLATFORM] = FailoverTransport(transports)
            if "psp" in options.destinations and psp_transports is not None:
                routes.update(await psp_transports(stack))
            if "pop" in options.destinations and pop_transport is not None:
                routes["pop"] = await pop_transport(stack)
            if PLATFORM in routes:
                await asyncio.to_thread(self.queue_status_report)
                await asyncio.to_thread(self.checkpoint_journal_if_due, signer)
            on_total(self.depth(set(routes)))
            worker = OutboxWorker(self.outbox, routes, signer, worker_settings(profile),
                                  on_progress=on_progress)
            try:
                if options.once:
                    return await worker.drain()
                stop = stop or asyncio.Event()
                async with asyncio.TaskGroup() as group:
                    group.create_task(worker.run(stop), name="sync-worker")
                    if PLATFORM in routes:
                        group.create_task(self._report_status(worker, stop),
                                          name="sync-status-report")
                        group.create_task(self._checkpoint_journal(worker, signer, stop),
                                          name="sync-journal-checkpoint")
                return worker.totals  # what this run did, pass after pass, until stopped
            finally:
                worker.close()

    async def _report_status(self, worker: OutboxWorker, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATUS_EVERY_S)
            if not stop.is_set():
                await asyncio.to_thread(self.queue_status_report)
                worker.wake()

    def checkpoint_journal_if_due(self, signer: Signer) -> bool:
        """Sign and queue an interval journal checkpoint if one is due; whether it did.

        A failure to sign (the token away) is logged and the sync goes on: the next due
        checkpoint covers everything before it.
        """
        try:
            done = checkpoint_if_due(self._store, signer, self._profile.terminal.terminal_id,
                                     self._profile.sync.journal_checkpoint_interval_s)
        except EtikaError as exc:
            log.warning("sync: journal checkpoint not signed: %s", exc)
            return False
        return done is not None

    async def _checkpoint_journal(self, worker: OutboxWorker, signer: Signer,
                                  stop: asyncio.Event) -> None:
        if self._profile.sync.journal_checkpoint_interval_s <= 0:
            return
        every = min(CHECKPOINT_CHECK_EVERY_S, self._profile.sync.journal_checkpoint_interval_s)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if not stop.is_set() and await asyncio.to_thread(
                    self.checkpoint_journal_if_due, signer):
                worker.wake()
