"""One contract, two implementations: the in-memory fake the Pilot tests use and the real
services (in-process card, a real ISO 8583 acquirer simulator on loopback, a software key
store, the in-memory PoP back end) behave the same where the screens depend on it."""

from __future__ import annotations

import contextlib
import datetime as dt
import warnings
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from edge_sync.connectors import (
    BreakerSettings,
    Iso8583Connector,
    Iso8583Settings,
    Router,
    RouteRule,
)
from edge_sync.pop_fake import InMemoryPopBackend
from etika_errors import EtikaError
from hsm.fake import SoftwareKeyStore
from simulators.card.reader import in_process_reader
from simulators.psp.acquirer import Acquirer
from simulators.psp.iso_host import Iso8583Host
from simulators.psp.keys import private_key_path, public_key_path
from terminal.money import MoneyError, parse_amount
from terminal.payments.model import PaymentEvent, UnknownPaymentError
from terminal.profile import Profile, load_profile
from terminal.services import TerminalServices
from terminal.store import Store
from terminal.store.token_map import StoreTokenRegistry
from tests.fixtures.psp import host_context
from ui.facade import CounterServices, HistoryQuery
from ui.fake import FakeCounterServices
from ui.services import TerminalCounterServices

warnings.filterwarnings("ignore", message=".*TripleDES.*")

PROFILE = Path(__file__).resolve().parents[2] / "firmware-config" / "default"


class ClosableSoftwareKeyStore(SoftwareKeyStore):
    """The software key store with the ``close`` the services call on exit."""

    def close(self) -> None:
        return None


@contextlib.asynccontextmanager
async def real_counter(data_dir: Path) -> AsyncIterator[TerminalCounterServices]:
    profile = load_profile(PROFILE)
    host = Iso8583Host(Acquirer(private_key_path("iso8583").read_bytes()))
    port = await host.start()

    def router(_profile: Profile, _store: Store) -> Router:
        connector = Iso8583Connector(Iso8583Settings(
            host_context("cih"), "127.0.0.1", port, public_key_path("iso8583").read_bytes(),
            timeout_s=2.0))
        return Router([RouteRule(name="all", connectors=("cih",))], {"cih": connector}, {},
                      breakers={"cih": BreakerSettings(50, 30.0, 15.0)})

    services = TerminalServices(
        profile, data_dir, card_reader=in_process_reader("visa-credit", "contact"),
        key_store_factory=lambda store: ClosableSoftwareKeyStore(StoreTokenRegistry(store)),
        router_factory=router, pop_client=InMemoryPopBackend())
    try:
        yield TerminalCounterServices(services)
    finally:
        services.close()
        await host.close()


@contextlib.asynccontextmanager
async def counter_services(kind: str, data_dir: Path) -> AsyncIterator[CounterServices]:
    if kind == "fake":
        yield FakeCounterServices(now=dt.datetime.now(dt.UTC))
    else:
        async with real_counter(data_dir) as real:
            yield real


async def first(names: Sequence[str]) -> int:
    return 0


pytestmark = [pytest.mark.parametrize("kind", ["fake", "real"]),
              pytest.mark.network]


async def test_quote_in_the_home_currency_and_bad_input(kind: str, tmp_path: Path) -> None:
    """The home currency is charged as typed; what is not an amount is the project's
    MoneyError, never a raw exception."""
    async with counter_services(kind, tmp_path) as services:
        home = services.info.default_currency
        assert home in services.info.currencies
        quote = services.quote("125,50", home)
        assert quote.charged == quote.typed == parse_amount("125.50", home)
        with pytest.raises(MoneyError):
            services.quote("12a", home)


async def test_sale_history_detail_refund_and_end_of_day(kind: str, tmp_path: Path) -> None:
    """An approved sale is in the history and its detail; a part refund is accepted; the
    end of day counts it; an unknown id is refused in words."""
    async with counter_services(kind, tmp_path) as services:
        home = services.info.default_currency
        events: list[PaymentEvent] = []
        outcome = await services.sale(parse_amount("750.00", home), contactless=False,
                                      on_event=events.append, choose_application=first)
        assert outcome.approved, outcome.reason
        kinds = [e.kind for e in events]
        assert kinds[0] == "waiting_card" and "done" in kinds
        assert "customer" in outcome.receipts
        rows = await services.history(HistoryQuery(last4=outcome.masked_pan[-4:]))
        assert [r.payment_id for r in rows] == [str(outcome.payment_id)]
        detail = await services.detail(str(outcome.payment_id))
        assert detail.row.amount == outcome.amount and detail.refundable_minor == 75000
        refund = await services.refund(str(outcome.payment_id), parse_amount("1.00", home))
        assert refund.state in ("approved", "pending_sync"), refund.reason
        report = await services.end_of_day(dt.datetime.now(dt.UTC).date())
        assert sum(t.count for t in report.totals) == 1
        with pytest.raises(UnknownPaymentError):
            await services.detail("00000000-0000-0000-0000-000000000000")
        status = await services.status()
        assert status.outbox_depth >= 0
        assert await services.diagnostics()


async def test_refund_above_what_is_left_is_refused(kind: str, tmp_path: Path) -> None:
    """A refund larger than the payment is refused with the project's own error."""
    async with counter_services(kind, tmp_path) as services:
        home = services.info.default_currency
        outcome = await services.sale(parse_amount("750.00", home), contactless=False,
                                      on_event=lambda _e: None, choose_application=first)
        with pytest.raises(EtikaError):
            await services.refund(str(outcome.payment_id), parse_amount("900.00", home))
