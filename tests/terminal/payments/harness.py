"""A counter for payment tests: the in-process card, a real ISO 8583 acquirer simulator on
loopback (it verifies the ARQC and answers with an ARPC), the store, a software key store
and the in-memory PoP back end, wired into a :class:`PaymentManager`."""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from edge_sync.connectors import (
    BreakerSettings,
    Iso8583Connector,
    Iso8583Settings,
    Router,
    RouteRule,
)
from edge_sync.pop_fake import InMemoryPopBackend
from hsm.fake import SoftwareKeyStore
from simulators.card.reader import SimulatedCardReader, in_process_reader
from simulators.psp.acquirer import Acquirer
from simulators.psp.faults import parse_faults
from simulators.psp.iso_host import Iso8583Host
from simulators.psp.keys import private_key_path, public_key_path
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.money import Amount, currency
from terminal.payments.manager import PaymentManager
from terminal.payments.model import SaleRequest
from terminal.profile import OfflineLimits, PaymentsSettings, Profile, load_profile
from terminal.store import Store
from terminal.store.token_map import StoreTokenRegistry
from tests.fixtures.psp import host_context

warnings.filterwarnings("ignore", message=".*TripleDES.*")

DEFAULT_PROFILE = Path(__file__).resolve().parents[3] / "firmware-config" / "default"
MAD = currency("MAD")


def mad(text: str) -> Amount:
    from terminal.money import parse_amount

    return parse_amount(text, MAD)


def sale(text: str, **kw: object) -> SaleRequest:
    return SaleRequest(amount=mad(text), card_timeout_s=1.0, **kw)  # type: ignore[arg-type]


@dataclass
class Counter:
    manager: PaymentManager
    store: Store
    acquirer: Acquirer
    host: Iso8583Host
    pop: InMemoryPopBackend
    reader: SimulatedCardReader
    profile: Profile

    def state(self, payment_id: object) -> str:
        return str(self.store.connection.execute(
            "SELECT status FROM payments WHERE id = ?", (str(payment_id),)).fetchone()[0])

    def outbox(self, payment_id: object) -> list[tuple[str, str, str]]:
        return [tuple(r) for r in self.store.connection.execute(  # type: ignore[misc]
            "SELECT destination, kind, state FROM outbox WHERE ref_id = ? ORDER BY id",
            (str(payment_id),))]

    async def host_up(self) -> None:
        """The acquirer comes back on its port (after ``host_down=True``)."""
        await self.host.start()

    def charges(self, payment_id: object) -> int:
        """How many times the acquirer holds money for this payment (0 or 1)."""
        entry = self.acquirer.ledger.get(str(payment_id))
        return int(entry is not None and entry.state in ("held", "captured"))


@contextlib.asynccontextmanager
async def counter(data_dir: Path, *, faults: str = "", card: str = "visa-credit",
                  interface: str = "contact", deadline_ms: int = 2000,
                  connector_timeout_s: float = 1.0, host_down: bool = False,
                  pop: InMemoryPopBackend | None = None,
                  offline: OfflineLimits | None = None) -> AsyncIterator[Counter]:
    profile = load_profile(DEFAULT_PROFILE)
    update: dict[str, object] = {"payments": PaymentsSettings(deadline_ms=deadline_ms)}
    if offline is not None:
        update["offline"] = offline
    profile = profile.model_copy(update=update)
    acquirer = Acquirer(private_key_path("iso8583").read_bytes())
    host = Iso8583Host(acquirer, parse_faults(faults))
    port = await host.start()
    if host_down:
        await host.close()
    connector = Iso8583Connector(Iso8583Settings(
        host_context("cih"), "127.0.0.1", port, public_key_path("iso8583").read_bytes(),
        timeout_s=connector_timeout_s))
    router = Router([RouteRule(name="all", connectors=("cih",))], {"cih": connector}, {},
                    breakers={"cih": BreakerSettings(50, 30.0, 15.0)})
    store = Store.open(data_dir / "etika.db")
    keys = SoftwareKeyStore(StoreTokenRegistry(store))
    backend = pop or InMemoryPopBackend()
    manager = PaymentManager(profile=profile, store=store, card_keys=keys, router=router,
                             pop=backend,
                             # Seeded dice: random selection (Book 3 §10.6.2) and the
                             # unpredictable number repeat run after run (#10 item 3).
                             kernel_config=replace(kernel_config_from_profile(profile),
                                                   random_bytes=random.Random(7).randbytes))
    try:
        yield Counter(manager, store, acquirer, host, backend,
                      in_process_reader(card, interface), profile)
    finally:
        await router.aclose()
        await host.close()  # a no-op when it is down
        store.close()
