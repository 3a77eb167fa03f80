"""The :class:`~edge_sync.connectors.base.CardEncryptor` over ``hsm.p2pe``.

The terminal builds one per payment from the card it read (or unsealed from the vault) and
hands it to routing; each connector asks it for an envelope under its own PSP's public key,
so falling through to another PSP re-encrypts for that PSP only.
"""

from __future__ import annotations

from hsm.cards import CardData
from hsm.p2pe import encrypt_card

__all__ = ["CardDataEncryptor"]


class CardDataEncryptor:
    """Seals one card's PAN and expiry for whichever PSP asks (RSA-OAEP or ECIES)."""

    def __init__(self, card: CardData) -> None:
        self._card = card

    def envelope_for(self, psp_public_key_pem: bytes, context: bytes) -> bytes:
        return encrypt_card(psp_public_key_pem, self._card, context)

    def __repr__(self) -> str:
        return f"CardDataEncryptor({self._card.masked_pan})"
