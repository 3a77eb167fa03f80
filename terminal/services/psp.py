"""The terminal's PSP side: one router per process with STANs that survive restarts, and
the kernel's online authoriser over it.

A reversal the router could not get confirmed (:class:`~edge_sync.connectors.errors.
ReversalPendingError`) is never dropped: it is queued in the outbox for its connector
(``psp:<name>``, kind ``reversal``, priority 10), in the same transaction as its journal
entry, and the outbox worker sends it until the PSP answers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path

from edge_sync.connectors import Amount as PspAmount
from edge_sync.connectors import PspReference, Router, RoutingKey
from edge_sync.connectors.errors import PspError, ReversalPendingError
from edge_sync.connectors.iso8583_mac import MessageAuthenticator
from edge_sync.json_types import JsonValue
from terminal.emv.errors import NoApplicationError
from terminal.emv.kernel import OnlineRequest, OnlineResponse
from terminal.emv.pan import pan_from_card
from terminal.money import Amount
from terminal.profile import Profile
from terminal.psp_routing import KernelAuthoriser, build_router
from terminal.psp_trust import P2pePins
from terminal.store import OutboxMessage, StateChange, Store
from terminal.store.psp_trace import SqliteStanSource

__all__ = [
    "REVERSAL_PRIORITY",
    "ProfilePspAuthoriser",
    "amount_payload",
    "build_persistent_router",
    "network_for_aid",
    "psp_amount",
    "queue_reversal",
    "reversal_payload",
]

#: Reversals go ahead of everything else queued for their PSP: undoing a charge comes first.
REVERSAL_PRIORITY = 10


def build_persistent_router(profile: Profile, store: Store, *, data_dir: Path | None = None,
                            mac_for: Callable[[str], MessageAuthenticator] | None = None
                            ) -> Router:
    """The profile's router whose ISO 8583 STANs come from the store (never reused after a
    restart: an acquirer takes a repeated STAN of the day for a duplicate). With the data
    dir, REST secrets come from ``<data-dir>/psp-credentials/<connector>`` and every P2PE
    key is checked against the terminal's own pins (``<data-dir>/p2pe-pins.toml``, trust on
    first use, then strict); ``mac_for`` gives ISO 8583 hosts with ``mac = true`` their MAC
    key in the token."""
    return build_router(
        profile, stan_source=lambda name: SqliteStanSource(store, name),
        credentials_dir=data_dir / "psp-credentials" if data_dir is not None else None,
        p2pe_pins=P2pePins(data_dir / "p2pe-pins.toml") if data_dir is not None else None,
        mac_for=mac_for,
    )


def network_for_aid(profile: Profile, aid: bytes) -> str:
    """The card network of the profile's application ``aid`` (the selection rule,
    :meth:`terminal.profile.Profile.network_for_aid`); no application → no route."""
    network = profile.network_for_aid(aid)
    if network is None:
        raise NoApplicationError(f"application {aid.hex().upper()} is not in the profile: "
                            "no route for it")
    return network


def psp_amount(amount: Amount) -> PspAmount:
    """The terminal's amount as the connectors take it (minor units + both ISO 4217 codes)."""
    return PspAmount(amount.minor, amount.currency.code, amount.currency.numeric,
                     amount.currency.exponent)


def amount_payload(amount: Amount) -> dict[str, JsonValue]:
    """:func:`psp_amount` as an outbox payload holds it (``Amount(**payload)`` reads it)."""
    body: dict[str, JsonValue] = dataclasses.asdict(psp_amount(amount))
    return body


def reversal_payload(original: PspReference, amount: Amount) -> dict[str, JsonValue]:
    """The outbox payload of a reversal of ``original`` (the manager's, recovery's and an
    interrupted authorisation's alike; :mod:`edge_sync.connectors.outbox_transport`)."""
    return {"connector": original.connector, "original": original.as_dict(),
            "amount": amount_payload(amount)}


def queue_reversal(store: Store, transaction_id: uuid.UUID, pending: ReversalPendingError, *,
                   entity: str = "psp", entity_id: str | None = None) -> str:
    """Queue ``pending.reversal`` for its connector; returns the outbox message id."""
    connector = str(pending.reversal.get("connector", ""))
    message = OutboxMessage(
        f"psp:{connector}", "reversal", dict(pending.reversal),
        f"reversal:{transaction_id}", ref_id=str(transaction_id), priority=REVERSAL_PRIORITY,
    )
    store.record(StateChange(entity, entity_id or str(transaction_id), None,
                             action="reversal_queued", reason=str(pending),
                             outbox=[message]))
    return message.message_id


class ProfilePspAuthoriser:
    """The kernel's online authoriser over the profile's routes, for one transaction.

    The route depends on the card's network, known only once the kernel has selected the
    application; the network is looked up when the ARQC arrives. A reversal left pending
    is handed to ``on_reversal_pending`` (the services queue it in the outbox).
    """

    def __init__(self, profile: Profile, router: Router, amount: Amount, *,
                 transaction_id: uuid.UUID | None = None,
                 on_reversal_pending: Callable[[uuid.UUID, ReversalPendingError], object]
                 | None = None) -> None:
        self._profile = profile
        self._router = router
        self._amount = amount
        self._on_reversal_pending = on_reversal_pending
        self.transaction_id = transaction_id or uuid.uuid4()
        self.bridge: KernelAuthoriser | None = None
        #: The PSPs this transaction's route may reach, once the request is on its way.
        self.candidates: list[str] = []

    @property
    def may_have_charged(self) -> bool:
        """The request left and no decline or confirmed reversal came back."""
        if self.bridge is None:
            return False
        response = self.bridge.response
        return (response is None and self.bridge.error is None) or bool(
            response is not None and response.approved)

    def reversals(self) -> list[ReversalPendingError]:
        """What to queue when this transaction must be undone without its answer (the
        cashier pressed Ctrl-C): a reversal for every PSP the route could have reached,
        naming the original by its transaction id."""
        return [ReversalPendingError(
            f"{name}: transaction {self.transaction_id} interrupted",
            reversal=reversal_payload(
                PspReference(connector=name, transaction_id=str(self.transaction_id)),
                self._amount))
            for name in self.candidates]

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        network = network_for_aid(self._profile, request.aid)
        self.bridge = KernelAuthoriser(
            self._router, self.transaction_id, psp_amount(self._amount), network=network,
        )
        pan = pan_from_card(dict(request.icc_data)) or ""
        with contextlib.suppress(PspError):
            self.candidates = self._router.candidates(RoutingKey(
                network=network, currency=self._amount.currency.code,
                amount_minor=self._amount.minor, aid=request.aid.hex().upper(), bin=pan[:8]))
        answer = await self.bridge.authorise(request)
        if isinstance(self.bridge.error, ReversalPendingError) and self._on_reversal_pending:
            self._on_reversal_pending(self.transaction_id, self.bridge.error)
        return answer
