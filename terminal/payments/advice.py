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
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

from edge_sync.connectors.base import CardInput, EntryMode
from hsm import CardKeyStore
from terminal.store import Store

__all__ = ["VaultCardEncryptor", "advice_card_source", "advice_id"]


def advice_id(payment_id: uuid.UUID | str) -> uuid.UUID:
    """The idempotency key (and P2PE context) of ``payment_id``'s advice: a name-based UUID
    in the payment's own namespace (RFC 9562 v5), the same at every retry, never the
    payment's id."""
    return uuid.uuid5(uuid.UUID(str(payment_id)), "advice")


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


def advice_card_source(store: Store, card_keys: CardKeyStore) -> Any:
    """The ``advice_card`` callback of :class:`edge_sync.connectors.PspOutboxTransport`."""

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
        return CardInput(encryptor=VaultCardEncryptor(card_keys, token, blob),
                         entry_mode=mode, masked_pan=masked or "")

    return card_for
