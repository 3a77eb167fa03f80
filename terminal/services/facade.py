"""The terminal's use cases behind one facade, built from a profile and a data dir.

The CLI and the UI call :class:`TerminalServices`; neither builds a connector, a worker, a
key store or a card reader itself. Everything with a lifetime (the store, the key store,
the PSP router) is opened lazily on first use and closed by :meth:`TerminalServices.close`
(or the ``with`` block). Tests and the simulators inject what they replace (an in-process
card reader, a software key store, a PoP client) through the constructor.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from etika_errors import EtikaError
from terminal.services.cards import ReaderProbe, reader_probe_for
from terminal.store import Store

# A card read needs the profile, the store and the kernel, not the PSP connectors, the sync,
# the key store or the payments: those parts are imported by the methods that build them
# (issue #16 item 11; tests/terminal/test_lazy_imports.py pins it).
if TYPE_CHECKING:
    from drivers.base import CardReader
    from edge_sync.connectors import CircuitBreaker, Router
    from edge_sync.connectors.errors import ReversalPendingError
    from edge_sync.pop import PopClient
    from edge_sync.signing import Signer
    from edge_sync.transport import Transport
    from hsm import KeyStore
    from terminal.emv.config import KernelConfig
    from terminal.emv.cvm import PinCallback
    from terminal.emv.offline_pin import OfflinePinCallback
    from terminal.eod import CurrencyTotal
    from terminal.money import Amount
    from terminal.payments.manager import PaymentManager
    from terminal.profile import Profile
    from terminal.services.psp import ProfilePspAuthoriser
    from terminal.services.sync import SigningKeys, SyncService

__all__ = ["KeyStoreSigningKeys", "PspBreakerStatus", "TerminalServices"]

log = logging.getLogger("etika.services")

DATABASE_NAME = "etika.db"


class KeyStoreSigningKeys:
    """:class:`~terminal.services.sync.SigningKeys` over the PKCS#11 key store."""

    def __init__(self, keystore: KeyStore) -> None:
        self._keystore = keystore

    @property
    def signing_key_version(self) -> int:
        return self._keystore.signing_key_version

    def signer(self) -> Signer:
        return self._keystore.signer()

    def rotate_signing(self) -> int:
        from hsm import KeyPurpose

        return self._keystore.rotate(KeyPurpose.SIGNING)

    def public_key_pem(self, version: int | None = None) -> bytes:
        return self._keystore.public_key_pem(version)


@dataclass(frozen=True)
class PspBreakerStatus:
    """One PSP's circuit breaker: ``closed``, ``open`` (``retry_in_s`` until the next
    probe call is let through) or ``half_open`` (the next call is the probe)."""

    name: str
    state: str
    retry_in_s: float | None = None


class TerminalServices:
    """One terminal's services: store, key store, card reader, PSP router, sync."""

    def __init__(
        self,
        profile: Profile,
        data_dir: Path,
        *,
        store: Store | None = None,
        key_store_factory: Callable[[Store], KeyStore] | None = None,
        signing_keys: SigningKeys | None = None,
        card_reader: CardReader | None = None,
        router_factory: Callable[[Profile, Store], Router] | None = None,
        pop_client: PopClient | None = None,
        reader_probe: ReaderProbe | None = None,
    ) -> None:
        self.profile = profile
        self.data_dir = Path(data_dir)
        self._store = store
        self._owns_store = store is None
        self._key_store_factory = key_store_factory
        self._key_store: KeyStore | None = None
        self._signing_keys = signing_keys
        #: An injected reader (simulated card, test double); ``None``: PC/SC via pcscd.
        self.card_reader = card_reader
        self._router_factory = router_factory or self._profile_router
        self._router: Router | None = None
        self._kernel_config: KernelConfig | None = None
        self._sync: SyncService | None = None
        #: An injected PoP client (a test's fake); ``None``: HTTPS to the profile's pop_url.
        self._pop_client = pop_client
        self._reader_probe = reader_probe
        #: The PSP breakers of this process, kept across routers: a router is closed at
        #: the end of each payment block, a PSP's failures must still count.
        self._breakers: dict[str, CircuitBreaker] = {}

    # --- lifetime ----------------------------------------------------------------------

    def __enter__(self) -> TerminalServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the key store and the store (the router is closed by :meth:`aclose`)."""
        if self._key_store is not None:
            self._key_store.close()
            self._key_store = None
        if self._store is not None and self._owns_store:
            self._store.close()
            self._store = None

    async def aclose(self) -> None:
        """Close the PSP links (they belong to the event loop that opened them)."""
        if self._router is not None:
            router, self._router = self._router, None
            await router.aclose()

    # --- parts -------------------------------------------------------------------------

    def _profile_router(self, profile: Profile, store: Store) -> Router:
        """The profile's router with this terminal's STANs, PSP credentials, P2PE pins and
        (for hosts that want one) MAC key in the token, opened only when asked for."""
        from hsm.mac import Pkcs11Cmac
        from terminal.services.psp import build_persistent_router

        return build_persistent_router(
            profile, store, data_dir=self.data_dir,
            mac_for=lambda name: Pkcs11Cmac(self.key_store().owner, name))

    @property
    def database_path(self) -> Path:
        return self.data_dir / DATABASE_NAME

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.database_path)
        return self._store

    def key_store(self) -> KeyStore:
        """The PKCS#11 key store, tokenising through the store's token map."""
        if self._key_store is None:
            if self._key_store_factory is not None:
                self._key_store = self._key_store_factory(self.store)
            else:
                from terminal.services.keys import hsm_settings_for, open_key_store

                self._key_store = open_key_store(
                    hsm_settings_for(self.profile, self.data_dir), self.store)
        return self._key_store

    def signing_keys(self) -> SigningKeys:
        if self._signing_keys is None:
            self._signing_keys = KeyStoreSigningKeys(self.key_store())
        return self._signing_keys

    @property
    def kernel_config(self) -> KernelConfig:
        if self._kernel_config is None:
            from terminal.emv.profile_adapter import kernel_config_from_profile

            self._kernel_config = kernel_config_from_profile(self.profile)
        return self._kernel_config

    def router(self) -> Router:
        """The PSP router of this process (persistent STANs); open it on the loop that uses
        it and close it with :meth:`aclose`."""
        if self._router is None:
            self._router = self._keep_breakers(self._router_factory(self.profile, self.store))
        return self._router

    def _keep_breakers(self, router: Router) -> Router:
        """Give ``router`` this process's breakers (the first router's become them)."""
        for name, breaker in router.breakers.items():
            router.breakers[name] = self._breakers.setdefault(name, breaker)
        return router

    def breaker_states(self) -> list[PspBreakerStatus]:
        """Every PSP of the profile with its breaker now (closed until a router of this
        process has counted failures)."""
        from edge_sync.connectors import BreakerState

        out = []
        for psp in self.profile.psps:
            breaker = self._breakers.get(psp.name)
            state = breaker.state if breaker is not None else BreakerState.CLOSED
            retry = (breaker.retry_in_s if breaker is not None
                     and state is BreakerState.OPEN else None)
            out.append(PspBreakerStatus(psp.name, state.value, retry))
        return out

    def reader_probe(self) -> ReaderProbe:
        """What the card readers hold now: the injected probe, pcscd's, or the injected
        reader's (:func:`terminal.services.cards.reader_probe_for`)."""
        if self._reader_probe is None:
            self._reader_probe = reader_probe_for(self.card_reader)
        return self._reader_probe

    # --- use cases ---------------------------------------------------------------------

    def online_authoriser(self, amount: Amount, router: Router | None = None, *,
                          transaction_id: uuid.UUID | None = None) -> ProfilePspAuthoriser:
        """The kernel's online authoriser through the profile's PSPs, for one transaction;
        a reversal the PSP leaves unconfirmed is queued in the outbox."""
        from terminal.services.psp import ProfilePspAuthoriser

        return ProfilePspAuthoriser(
            self.profile, router or self.router(), amount, transaction_id=transaction_id,
            on_reversal_pending=self.queue_reversal,
        )

    def queue_reversal(self, transaction_id: uuid.UUID, pending: ReversalPendingError) -> str:
        from terminal.services.psp import queue_reversal

        return queue_reversal(self.store, transaction_id, pending)

    def new_router(self) -> Router:
        """A router of its own (a card job on another event loop needs one)."""
        return self._keep_breakers(self._router_factory(self.profile, self.store))

    @property
    def sync(self) -> SyncService:
        if self._sync is None:
            from terminal.services.sync import SyncService

            self._sync = SyncService(self.profile, self.data_dir, self.store,
                                     self.signing_keys)
        return self._sync

    async def psp_transports(self, stack: contextlib.AsyncExitStack) -> dict[str, Transport]:
        """``psp:<name>`` → the outbox transport through that connector (a router of its
        own, closed with ``stack``); advices re-seal their card from the vault, and the
        reference of an accepted advice is recorded on its payment (what a refund names)."""
        from edge_sync.connectors import PspOutboxTransport
        from terminal.payments.advice import advice_card_source, advice_reference_recorder

        router = self.new_router()
        stack.push_async_callback(router.aclose)
        card = advice_card_source(self.store, self.key_store)
        accepted = advice_reference_recorder(self.store)
        return {f"psp:{name}": PspOutboxTransport(router, name, advice_card=card,
                                                  on_accepted=accepted)
                for name in router.connectors}

    def pop_client(self, stack: contextlib.AsyncExitStack) -> PopClient:
        """The PoP back end's client: the injected one, HTTPS to ``[sync] pop_url`` signed
        with the terminal's key, or one that says none is configured."""
        if self._pop_client is not None:
            return self._pop_client
        from terminal.services.pop import profile_pop_client

        return profile_pop_client(self.profile, self.signing_keys().signer(), stack,
                                  self.data_dir)

    async def pop_transport(self, stack: contextlib.AsyncExitStack) -> Transport:
        """The outbox transport of destination ``pop``."""
        from edge_sync.pop_outbox import PopOutboxTransport

        return PopOutboxTransport(self.pop_client(stack))

    @contextlib.asynccontextmanager
    async def payments(self, *, pin_entry: PinCallback | None = None,
                       offline_pin: OfflinePinCallback | None = None,
                       locale: str = "fr") -> AsyncIterator[PaymentManager]:
        """The payment manager on this loop: the process's router, the PoP client, the key
        store, the PIN pad's ``pin_entry``; the links close with the block."""
        from terminal.payments.manager import PaymentManager

        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self.aclose)
            yield PaymentManager(
                profile=self.profile, store=self.store, card_keys=self.key_store(),
                router=self.router(), pop=self.pop_client(stack),
                kernel_config=self.kernel_config, pin_entry=pin_entry,
                offline_pin=offline_pin, locale=locale,
            )

    def end_of_day(self, day: dt.date) -> list[CurrencyTotal]:
        """Compute the day's totals and queue them for the platform (journalled), then sign
        the journal head with the terminal's key and queue that checkpoint too."""
        from terminal.eod import report_end_of_day
        from terminal.store.checkpoints import sign_checkpoint

        terminal_id = self.profile.terminal.terminal_id
        totals = report_end_of_day(self.store, terminal_id, day)
        try:
            sign_checkpoint(self.store, self.signing_keys().signer(), terminal_id, "end_of_day")
        except EtikaError as exc:
            # The day's report stands without it; the gap is logged (and the next
            # checkpoint still covers everything before it).
            log.warning("end of day %s: journal checkpoint not signed: %s", day, exc)
        return totals

    def describe(self) -> dict[str, str]:
        return {"terminal_id": self.profile.terminal.terminal_id,
                "profile": str(self.profile.directory), "data_dir": str(self.data_dir)}
