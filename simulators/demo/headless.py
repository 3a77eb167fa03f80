"""``etika demo --headless``: a scripted day at the counter, and one JSON summary.

What runs (loopback only, each started by :class:`~simulators.demo.fleet.Fleet` as its own
process and stopped by PID, the same launcher as the interactive demo): the ISO 8583
acquirer simulator (its ledger read back through its control port), the PoP back end
stand-in (``etika sim pop``), the platform on SQLite (``etika platform serve``) behind
Mosquitto when it is installed (the shipped configuration and ACLs, TLS with the test PKI),
over HTTPS otherwise; and, when pcscd with vpcd's readers can run (``cards="auto"``), the
card of each step plugged into vpcd by :meth:`Fleet.card` (``etika sim card``, as the
interactive shelf does) and read over PC/SC. ``cards="in-process"`` (or no pcscd) keeps the
cards in an in-process reader: no pcscd, no machine-wide PC/SC lock, ten times the speed.
The PIN pad is the in-process DUKPT one. The terminal side is the real one: the payments
manager, the store, the outbox and its worker; its keys are software keys (no token). The
summary says which: ``"cards": "pcscd+vpcd" | "in-process"``, ``"platform_link": "mqtt" |
"https"``.

The mix, cycled over N transactions: contact sales with online PIN, contactless taps under
the CVM limit (no CVM), a co-badged card, a decline (insufficient funds), a timeout (no
card comes), a PoP failure (the back end errs once: the sale completes as PoP pending, then
confirmed at the sync), an offline period (the acquirer unreachable: offline approvals
under the floor limit), partial refunds and a void. Then the outbox is drained to every
destination and the payments settled, until the outbox is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx

from drivers.reader_errors import ReaderTimeoutError
from edge_sync.connectors import (
    BreakerSettings,
    Iso8583Connector,
    Iso8583Settings,
    Router,
    RouteRule,
)
from edge_sync.connectors.iso8583_messages import HostContext
from edge_sync.https import HttpsLinkSettings, HttpsTransport
from edge_sync.mqtt import MqttLinkSettings, MqttTransport
from edge_sync.outbox import RetryPolicy
from edge_sync.worker import OutboxWorker, WorkerSettings
from hsm import KeyStore
from hsm.fake import SoftwareKeyStore
from simulators.card.reader import in_process_reader
from simulators.demo.fleet import Fleet
from simulators.demo.processes import DemoError, free_port
from simulators.pinpad.device import PinPadDevice
from simulators.pinpad.inprocess import SimulatedPinPad
from simulators.psp.keys import public_key_path
from terminal.emv.cvm import OnlinePinRequest
from terminal.money import Amount, parse_amount
from terminal.money import currency as currency_of
from terminal.payments.manager import PaymentManager
from terminal.payments.model import APPROVED_STATES, PaymentOutcome, SaleRequest
from terminal.payments.recovery import recover, settle
from terminal.payments.refunds import refund_payment, void_payment
from terminal.profile import Profile, load_profile
from terminal.services import TerminalServices
from terminal.services.fake import SoftwareSigningKeys
from terminal.store import Store
from terminal.store.outbox import SqliteOutbox
from terminal.store.psp_trace import SqliteStanSource
from terminal.store.token_map import StoreTokenRegistry

__all__ = ["CARD_MODES", "Step", "mix", "run_headless"]

#: ``--cards``: pcscd + vpcd when it can run (auto), required (pcscd), or never.
CARD_MODES = ("auto", "pcscd", "in-process")

_DEBUG = bool(os.environ.get("ETIKA_DEMO_DEBUG"))


@dataclass(frozen=True)
class Step:
    """One scripted action at the counter."""

    kind: str  # sale | decline | timeout | pop_failure | refund | void
    card: str = "visa-credit"
    interface: str = "contact"
    amount: str = "120.00"


#: One cycle of the mix (sales; the specials are placed by :func:`mix`).
_CYCLE = (
    Step("sale", "visa-credit", "contact", "750.00"),        # online PIN
    Step("sale", "visa-credit", "contactless", "45.00"),     # no CVM, tap
    Step("sale", "mastercard-debit", "contact", "620.00"),   # CDA, online
    Step("sale", "domestic-visa", "contact", "300.00"),      # co-badged domestic
    Step("sale", "visa-credit", "contactless", "120.00"),    # tap, online
    Step("sale", "mastercard-debit", "contact", "80.00"),
)


def mix(n: int) -> Iterator[tuple[int, Step, bool]]:
    """``(index, step, offline)`` for N transactions: the cycle of sales with a decline,
    a timeout, a PoP failure, refunds and a void spread over the run, and an offline
    period (about a tenth of the run, small amounts under the floor limit)."""
    specials = {max(1, n // 7): Step("decline", "visa-credit", "contact", "99999.00"),
                max(2, n // 5): Step("timeout"),
                max(3, n // 4): Step("pop_failure", "visa-credit", "contact", "210.00"),
                max(4, n // 3): Step("refund"), max(5, n // 2): Step("void"),
                max(6, 2 * n // 3): Step("refund")}
    offline = range(int(n * 0.6), int(n * 0.6) + max(1, n // 10))
    for i in range(n):
        step = specials.get(i) or _CYCLE[i % len(_CYCLE)]
        if i in offline and step.kind == "sale":
            step = Step("sale", step.card, "contact", "25.00")
        yield i, step, i in offline


class _NoCardReader:
    """A reader no card is ever presented to: the sale times out (``card_timeout_s``)."""

    async def wait_for_card(self, reader: str | None = None,
                            timeout: float | None = None) -> str:
        raise ReaderTimeoutError("no card was presented before the timeout",
                                 reader=reader or "demo")

    async def connect(self, reader: str) -> Any:  # pragma: no cover - never reached
        raise ReaderTimeoutError("no card", reader=reader)


class _ClosableKeys(SoftwareKeyStore):
    def close(self) -> None:
        return None


class _Link:
    """Where the terminal's router points: the live acquirer, or a dead port (offline)."""

    def __init__(self, port: int, dead_port: int) -> None:
        self.port = port
        self.dead_port = dead_port
        self.offline = False

    def router(self, _profile: Profile, store: Store) -> Router:
        # STANs from the store, as the terminal's own router takes them: a router made anew
        # (the link going down and up, the final sync) that restarted at 000001 would repeat
        # a STAN of the same second, and the acquirer answers a repeat with the earlier
        # message's reply (the refunds sent at the final sync stayed pending_sync).
        connector = Iso8583Connector(Iso8583Settings(
            HostContext(connector="cih", acquirer_id="504001", terminal_id="ETK00001",
                        merchant_id="ETIKA0000000001",
                        merchant_name_location="ETIKA DEMO SHOP           CASABLANCA   MA"),
            "127.0.0.1", self.dead_port if self.offline else self.port,
            public_key_path("iso8583").read_bytes(), timeout_s=2.0),
            stans=SqliteStanSource(store, "cih"))
        return Router([RouteRule(name="all", connectors=("cih",))], {"cih": connector}, {},
                      breakers={"cih": BreakerSettings(50, 30.0, 15.0)})


def _terminal_totals(store: Store) -> dict[str, int]:
    """Sales the terminal counts as taken, less the refunds the acquirer approved."""
    totals: dict[str, int] = {}
    for currency, amount in store.connection.execute(
            "SELECT currency, amount_minor FROM payments WHERE status IN"
            " ('completed', 'pop_deferred', 'needs_reconciliation')"):
        totals[currency] = totals.get(currency, 0) + int(amount)
    for currency, amount in store.connection.execute(
            "SELECT currency, amount_minor FROM refunds WHERE kind = 'refund'"
            " AND status = 'approved'"):
        totals[currency] = totals.get(currency, 0) - int(amount)
    return totals


def _psp_totals(entries: list[dict[str, Any]]) -> dict[str, int]:
    """What the acquirer simulator captured (sales and offline advices) less its refunds,
    from its control port's ledger entries."""
    totals: dict[str, int] = {}
    for entry in entries:
        if entry["kind"] == "refund" or entry["state"] not in ("held", "captured", "refunded"):
            continue
        currency = str(entry["currency"])
        code = currency_of(int(currency)).code if currency.isdigit() else currency
        totals[code] = (totals.get(code, 0) + (entry["captured"] or entry["amount_minor"])
                        - entry["refunded"])
    return totals


def _pop_totals(records: list[dict[str, Any]]) -> dict[str, int]:
    """Confirmed sale records less confirmed refund and cancel (void) records."""
    totals: dict[str, int] = {}
    sign = {"sale": 1, "refund": -1, "cancel": -1}
    for record in records:
        if record.get("status") == "confirmed" and record.get("kind") in sign:
            currency = str(record.get("currency"))
            totals[currency] = (totals.get(currency, 0)
                                + sign[str(record["kind"])] * int(record["amount_minor"]))
    return totals


def _platform_totals(database: Path) -> dict[str, int]:
    """The platform's counted sales plus the refunds it received (negative amounts)."""
    totals: dict[str, int] = {}
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        for currency, amount in db.execute(
                "SELECT currency, sum(amount_minor) FROM platform_transactions WHERE"
                " counted = 1 OR (amount_minor < 0 AND state = 'approved') GROUP BY currency"):
            totals[str(currency)] = int(amount or 0)
    return totals


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the process image (reset by
    exec); ru_maxrss would also count the parent's pages of a forked child."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def run_headless(transactions: int, profile_dir: Path, work: Path, *,
                       cards: str = "auto") -> dict[str, Any]:
    """Run the mix; return the summary (see the module docstring). ``cards`` is one of
    :data:`CARD_MODES`."""
    if cards not in CARD_MODES:
        raise ValueError(f"cards={cards!r}: use one of {', '.join(CARD_MODES)}")
    keys = SoftwareSigningKeys()
    fleet = Fleet(work, profile_dir)
    try:
        pem = work / "terminal-signing.pem"
        pem.write_bytes(keys.for_version(1).public_key_pem())
        # Started side by side: each spends its start-up importing, not waiting on another.
        (port, control), _link, pop_url, over_pcsc = await asyncio.gather(
            asyncio.to_thread(fleet.iso8583_acquirer),
            asyncio.to_thread(fleet.platform, "ETK00001", pem.read_bytes()),
            asyncio.to_thread(lambda: fleet.pop(confirm_delay_ms=0,
                                                key_file=f"ETK00001={pem}:1")),
            asyncio.to_thread(lambda: cards != "in-process" and fleet.pcscd()))
        if cards == "pcscd" and not over_pcsc:
            raise DemoError("pcscd with vsmartcard-vpcd's two readers cannot run here "
                            "(scripts/setup installs them); use --cards in-process")
        profile = load_profile(fleet.profile_dir)
        link = _Link(port, free_port())
        services = TerminalServices(
            profile, work / "data", signing_keys=keys, router_factory=link.router,
            key_store_factory=lambda store: cast(
                KeyStore, _ClosableKeys(StoreTokenRegistry(store))))
        try:
            return await _run(services, link, fleet, control, pop_url, transactions,
                              over_pcsc=bool(over_pcsc))
        finally:
            services.close()
    finally:
        fleet.stop()


class _VpcdCards:
    """The card of each step plugged into vpcd (:meth:`Fleet.card`, what the interactive
    shelf does) and read through pcscd; pulled out once the sale is over."""

    def __init__(self, fleet: Fleet) -> None:
        from drivers.pcsc import PcscReader

        self._fleet = fleet
        self.reader = PcscReader(poll_ms=100, backoff=(0.05, 0.5))

    @contextlib.asynccontextmanager
    async def plugged(self, step: Step) -> Any:
        if step.kind == "timeout":  # no card comes: both readers stay empty
            yield self.reader
            return
        card = await asyncio.to_thread(self._fleet.card, step.card,
                                       contactless=step.interface == "contactless")
        try:
            yield self.reader
        finally:
            await asyncio.to_thread(self._fleet.remove_card, card)


class _InProcessCards:
    @contextlib.asynccontextmanager
    async def plugged(self, step: Step) -> Any:
        yield (_NoCardReader() if step.kind == "timeout"
               else in_process_reader(step.card, step.interface))


async def _run(services: TerminalServices, link: _Link, fleet: Fleet, control: int,
               pop_url: str, transactions: int, *, over_pcsc: bool) -> dict[str, Any]:
    cards: _VpcdCards | _InProcessCards = _VpcdCards(fleet) if over_pcsc else _InProcessCards()
    pad = SimulatedPinPad(PinPadDevice.from_bdk(
        bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"),
        bytes.fromhex("FFFF9876543210E00000"), pin="1234"))

    async def pin_entry(request: OnlinePinRequest) -> Any:
        return await pad.get_pin(request.pan, request.amount, request.currency_numeric,
                                 timeout_s=30)

    home = services.profile.default_currency
    latencies: list[float] = []
    approved: list[PaymentOutcome] = []
    events: Counter[str] = Counter()
    refunds = 0
    voids = 0
    async with httpx.AsyncClient(base_url=pop_url, timeout=5) as pop_admin:
        offline_now = False
        manager_cm = services.payments(pin_entry=pin_entry, locale="en")
        manager: PaymentManager = await manager_cm.__aenter__()
        try:
            await recover(manager)
            for _i, step, offline in mix(transactions):
                if offline != offline_now:  # the acquirer goes down / comes back
                    await manager_cm.__aexit__(None, None, None)
                    link.offline = offline_now = offline
                    manager_cm = services.payments(pin_entry=pin_entry, locale="en")
                    manager = await manager_cm.__aenter__()
                if step.kind in ("refund", "void"):
                    target = next((o for o in reversed(approved) if not o.offline), None)
                    if target is None:
                        continue
                    approved.remove(target)
                    if step.kind == "void":
                        result = await void_payment(manager, str(target.payment_id))
                        voids += result.state == "approved"
                    else:
                        part = Amount(max(1, target.amount.minor // 4), target.amount.currency)
                        result = await refund_payment(manager, str(target.payment_id), part)
                        refunds += result.state == "approved"
                    events[f"{step.kind}:{result.state}"] += 1
                    continue
                if step.kind == "pop_failure":
                    await pop_admin.post("/v1/admin/faults", json={"spec": "error=1"})
                request = SaleRequest(amount=parse_amount(step.amount, home),
                                      contactless=step.interface == "contactless",
                                      card_timeout_s=0.05 if step.kind == "timeout" else 5.0)
                async with cards.plugged(step) as reader:
                    started = time.perf_counter()
                    outcome = await manager.sale(request, reader)
                    latencies.append(time.perf_counter() - started)
                events[f"{step.kind}:{outcome.state}"] += 1
                if outcome.approved:
                    approved.append(outcome)
        finally:
            await manager_cm.__aexit__(None, None, None)
            if isinstance(cards, _VpcdCards):
                await cards.reader.aclose()
        depth = await _final_sync(services, fleet)
        summary = (await pop_admin.get("/ledger/summary")).json()
        records = (await pop_admin.get("/ledger/records")).json()
    async with httpx.AsyncClient(timeout=30) as client:
        psp_ledger = (await client.get(f"http://127.0.0.1:{control}/ledger/summary")).json()
    platform = next(p for what, p in fleet.processes.started if what == "platform")
    await asyncio.to_thread(fleet.processes.stop, platform)  # its database is complete
    store = services.store
    states = Counter(str(r[0]) for r in store.connection.execute("SELECT status FROM payments"))
    totals = {"terminal": _terminal_totals(store),
              "platform": _platform_totals(fleet.platform_db),
              "psp_simulator": _psp_totals(psp_ledger["entries"]),
              "pop_ledger": _pop_totals(records if isinstance(records, list)
                                        else records.get("records", []))}
    summary_out: dict[str, Any] = {
        "transactions": transactions,
        "cards": "pcscd+vpcd" if over_pcsc else "in-process",
        "platform_link": (fleet.platform_link or "").lower(),
        "final_states": dict(sorted(states.items())),
        "steps": dict(sorted(events.items())),
        "refunds": refunds, "voids": voids,
        "latency_s": {"p50": round(_percentile(latencies, 0.5), 4),
                      "p99": round(_percentile(latencies, 0.99), 4)},
        "outbox_depth_after_sync": depth,
        "totals_minor": totals,
        "totals_match": len({json.dumps(t, sort_keys=True) for t in totals.values()}) == 1,
        "rss_mb": _peak_rss_mb(),
        "approved_share": round(sum(states[s] for s in APPROVED_STATES)
                                / max(1, sum(states.values())), 3),
    }
    if _DEBUG:
        summary_out["psp_ledger"] = psp_ledger["entries"]
        summary_out["pop_summary"] = summary
        summary_out["pop_records"] = records
    return summary_out


async def _final_sync(services: TerminalServices, fleet: Fleet) -> int:
    """Drain the outbox to the platform, the PoP back end and the PSP, settle, repeat."""
    settings = WorkerSettings(terminal_id=services.profile.terminal.terminal_id,
                              batch_size=200, max_in_flight=400, ack_timeout_s=10,
                              retry=RetryPolicy(base_s=0.01, cap_s=0.05))
    outbox = SqliteOutbox(services.store)
    # The platform signs its acks; the link verifies them with its public half.
    if fleet.pki is None:
        raise DemoError("the platform is not started")
    terminal_id = services.profile.terminal.terminal_id
    platform_key = (fleet.profile_dir / "platform.pem").read_bytes()
    platform: MqttTransport | HttpsTransport
    if fleet.platform_link == "MQTT":  # the broker the fleet started, as the profile copy says
        sync = services.profile.sync
        platform = MqttTransport(MqttLinkSettings(
            terminal_id=terminal_id, host=sync.mqtt_host, port=sync.mqtt_port,
            ca_file=fleet.pki.ca_pem, cert_file=fleet.pki.terminal_pem,
            key_file=fleet.pki.terminal_key, platform_public_key=platform_key))
    else:
        platform = HttpsTransport(HttpsLinkSettings(
            terminal_id=terminal_id, base_url=f"https://127.0.0.1:{fleet.platform_port}",
            ca_file=fleet.pki.ca_pem, max_batch=200, platform_public_key=platform_key))
    depth = -1
    async with platform, contextlib.AsyncExitStack() as stack:
        if isinstance(platform, MqttTransport) and not await platform.wait_connected(30):
            raise DemoError(f"the terminal could not connect to Mosquitto: "
                            f"{platform.last_error or 'no answer'} (see {fleet.log('mosquitto')})")
        routes: dict[str, Any] = {"platform": platform,
                                  "pop": await services.pop_transport(stack)}
        routes.update(await services.psp_transports(stack))
        for _round in range(8):
            worker = OutboxWorker(outbox, routes, services.signing_keys().signer(), settings)
            await worker.drain()
            worker.close()
            async with services.payments(locale="en") as manager:
                await settle(manager)
            depth = services.sync.depth()
            if depth == 0:
                break
            await asyncio.sleep(0.05)  # let retry backoffs come due
    return depth
