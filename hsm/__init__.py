"""PKCS#11 key store: sessions, tokenisation and vault, P2PE, signing, rotation.

The names other packages use::

    from hsm import HsmSettings, KeyStore, AsyncKeyStore, KeyPurpose
    from hsm import verify_signature, encrypt_card, decrypt_card
    from hsm import CardKeyStore, Signer, TokenRegistry   # Protocols
    from hsm.fake import InMemoryTokenRegistry, SoftwareKeyStore, SoftwareSigner
"""

from hsm.base import CardKeyStore, Signer, TokenRegistry
from hsm.cards import CardData, CardToken, TokenisedCard, luhn_valid, mask_pan
from hsm.config import DEFAULT_MODULE, DEFAULT_TOKEN_LABEL, HsmSettings
from hsm.keys import KeyInfo, KeyPurpose
from hsm.keystore import AsyncKeyStore, KeyStore, KeyStoreStatus
from hsm.p2pe import decrypt_card, encrypt_card
from hsm.signing import verify_signature

__all__ = [
    "DEFAULT_MODULE",
    "DEFAULT_TOKEN_LABEL",
    "AsyncKeyStore",
    "CardData",
    "CardKeyStore",
    "CardToken",
    "HsmSettings",
    "KeyInfo",
    "KeyPurpose",
    "KeyStore",
    "KeyStoreStatus",
    "Signer",
    "TokenRegistry",
    "TokenisedCard",
    "decrypt_card",
    "encrypt_card",
    "luhn_valid",
    "mask_pan",
    "verify_signature",
]
