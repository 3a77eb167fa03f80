"""Card data for an offline approval's advice, re-sealed from the vault for its PSP.

An offline approval keeps only the token and the vault blob (AES-GCM under an HSM key).
When the outbox worker forwards its advice (ISO 8583 0220 / REST capture), the key store
opens the blob and encrypts the card for the acquirer's P2PE key in one step
(:meth:`hsm.KeyStore.encrypt_for_psp`): the clear PAN never leaves the key store's call.

An advice is a transaction of its own at the acquirer (ISO 8583 0220, a REST capture), so it
goes under its own idempotency key, :func:`advice_id`, not the payment's: an online attempt
of the same payment may already stand at the acquirer under the payment's id (declined, or
unanswered and reversed), and an advice sent under that id would be answered as a replay of
it and book nothing. The advice id is derived from the payment id, so every retry of the
advice (after a restart too) carries the same key and the acquirer books it once.

When the acquirer accepts the advice, :func:`advice_reference_recorder` writes its answer's
reference (RRN, STAN and DE 7 of the 0220, or the REST capture id) on the payment, with an
attempt row and a journal entry: it is what a refund or a void of the payment names, so a
refund made before the advice went (``pending_sync``) can go out at the next settlement.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from edge_sync.connectors.base import CardInput, EntryMode, PspResponse
from edge_sync.connectors.outbox_transport import AcceptedHook, AdviceCard
from edge_sync.messages import Envelope
from edge_sync.transaction_keys import advice_key
from hsm import CardKeyStore
from terminal.payments import ledger
from terminal.payments.messages import json_text
from terminal.store import StateChange, Store
from terminal.store.changes import record_change

__all__ = ["VaultCardEncryptor", "advice_card_source", "advice_id", "advice_reference_recorder",
           "record_advice_reference"]


def advice_id(payment_id: uuid.UUID | str) -> uuid.UUID:
    """The idempotency key (and P2PE context) of ``payment_id``'s advice: a name-based UUID
    in the payment's own namespace (RFC 9562 v5), the same at every retry, never the
    payment's id (the rule lives in :func:`edge_sync.transaction_keys.advice_key`, which
    the platform's reconciliation shares)."""
    return advice_key(payment_id)


class VaultCardEncryptor:
    """:class:`edge_sync.connectors.CardEncryptor` over a vault blob in the key store."""

    def __init__(self, card_keys: CardKeyStore, token: str, vault_blob: bytes) -> None:
        self._card_keys = card_keys
        self._token = token
        self._blob = vault_blob

    def envelope_for(self, psp_public_key_pem: bytes, context: bytes) -> bytes:
        return self._card_keys.encrypt_for_psp(self._token, self._blob, psp_public_key_pem,
                                               context)

    def __repr__(self) -> str:
        return "VaultCardEncryptor(<sealed>)"


class AdviceCardError(ValueError):
    """The advice's payment has no sealed card to forward."""


def advice_card_source(store: Store, open_card_keys: Callable[[], CardKeyStore]) -> AdviceCard:
    """The ``advice_card`` callback of :class:`edge_sync.connectors.PspOutboxTransport`.

    The key store is opened only when an advice needs its card: a sync with no offline
    approval queued (platform messages, reversals) does not need the token at all.
    """

    async def card_for(payload: Mapping[str, Any]) -> CardInput:
        def load() -> tuple[str, bytes, str] | None:
            row = store.connection.execute(
                "SELECT card_token, vault_blob, pan_masked FROM payments WHERE id = ?",
                (str(payload.get("payment_id")),)).fetchone()
            return None if row is None or row[1] is None else (row[0], bytes(row[1]), row[2])

        found = await asyncio.to_thread(load)
        if found is None:
            raise AdviceCardError(f"payment {payload.get('payment_id')} has no sealed card")
        token, blob, masked = found
        mode = EntryMode.CONTACTLESS if payload.get("entry_mode") == "contactless" \
            else EntryMode.CHIP
        return CardInput(encryptor=VaultCardEncryptor(open_card_keys(), token, blob),
                         entry_mode=mode, masked_pan=masked or "")

    return card_for


def record_advice_reference(store: Store, payment_id: str, response: PspResponse) -> bool:
    """Write the accepted advice's reference on its payment (with an attempt row and a
    journal entry); False when there is nothing to write: no such payment, or a reference
    already there (a repeat the PSP replayed changes nothing)."""
    reference = response.reference
    with store.transaction() as conn:
        row = conn.execute("SELECT psp_reference FROM payments WHERE id = ?",
                           (payment_id,)).fetchone()
        if row is None or row[0]:
            return False
        stored = json_text(reference.as_dict())
        transaction = reference.rrn or reference.psp_id or reference.transaction_id
        record_change(conn, StateChange(
            "payment_advice", payment_id, None, action="advice_accepted",
            fields={"psp_reference": reference.as_dict(), "code": response.code,
                    "replayed": response.replayed},
            reason=f"{reference.connector} accepted the offline approval's advice "
                   f"(code {response.code})"))
        conn.execute(
            "UPDATE payments SET psp_reference = ?, gateway_provider = ?, "
            "gateway_transaction_id = ?, auth_code = coalesce(auth_code, ?) WHERE id = ?",
            (stored, reference.connector, transaction, reference.approval_code, payment_id))
        ledger.insert_attempts(conn, uuid.UUID(payment_id), [ledger.Attempt(
            reference.connector, "approved",
            summary={"operation": "advice", "code": response.code,
                     "replayed": response.replayed, "reference": reference.as_dict()})])
    return True


def advice_reference_recorder(store: Store) -> AcceptedHook:
    """The ``on_accepted`` hook of :class:`edge_sync.connectors.PspOutboxTransport`: an
    accepted advice's reference goes on its payment (other rows need nothing recorded)."""

    async def on_accepted(envelope: Envelope, response: PspResponse) -> None:
        if envelope.kind != "advice":
            return
        payment_id = str(envelope.payload.get("payment_id", ""))
        await asyncio.to_thread(record_advice_reference, store, payment_id, response)

    return on_accepted
