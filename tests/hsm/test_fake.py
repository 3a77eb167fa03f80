"""The in-memory key store fake behaves like the token where the layers above can see it."""

from __future__ import annotations

import pytest

from hsm.cards import CardData, luhn_valid
from hsm.errors import KeyMissingError, VaultBlobInvalidError
from hsm.fake import SoftwareKeyStore
from hsm.signing import verify_signature

PAN = "4761739001010119"


def test_round_trip_and_token_format() -> None:
    """Tokens keep first 6/last 4 and fail Luhn; blobs open; signatures verify."""
    store = SoftwareKeyStore()
    card = store.tokenise(PAN, "2712")
    assert card.token[:6] == PAN[:6] and card.token[-4:] == PAN[-4:]
    assert not luhn_valid(card.token)
    assert store.tokenise_pan(PAN).token == card.token
    assert store.detokenise(card.token, card.vault_blob) == CardData(PAN, "2712")
    verify_signature(store.public_key_pem(), b"x", store.sign(b"x"))
    assert PAN not in repr(store) and PAN not in repr(card)


def test_tampering_and_unknown_versions_raise_the_token_errors() -> None:
    """The fake raises the same HsmError leaves as the token for bad blobs."""
    store = SoftwareKeyStore()
    card = store.tokenise(PAN, "2712")
    bad = bytearray(card.vault_blob)
    bad[-1] ^= 1
    with pytest.raises(VaultBlobInvalidError):
        store.detokenise(card.token, bytes(bad))
    bad = bytearray(card.vault_blob)
    bad[1:3] = (9).to_bytes(2, "big")
    with pytest.raises(KeyMissingError, match="etika-vault-v9"):
        store.detokenise(card.token, bytes(bad))
