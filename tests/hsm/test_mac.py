"""ISO 8583 MAC keys live in the token and compute AES-CMAC there (issue #12 item 6)."""

from __future__ import annotations

import pytest

from edge_sync.connectors.iso8583_mac import SoftwareCmac
from hsm.errors import KeyMissingError
from hsm.keystore import KeyStore
from hsm.mac import Pkcs11Cmac, import_mac_key

pytestmark = pytest.mark.hsm

# NIST SP 800-38B Appendix D.1, AES-128, Example 2 (16-byte message).
NIST_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
NIST_MESSAGE = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
NIST_CMAC = bytes.fromhex("070a16b46b4d4144f79bdd9dd04a287c")


def test_token_cmac_matches_the_nist_vector(hsm_keystore: KeyStore) -> None:
    """The token's CKM_AES_CMAC gives the SP 800-38B answer, truncated to 8 bytes, as the
    acquirer's software CMAC does."""
    import_mac_key(hsm_keystore.owner, "nist", NIST_KEY)
    mac = Pkcs11Cmac(hsm_keystore.owner, "nist")
    assert mac.mac(NIST_MESSAGE) == NIST_CMAC[:8]
    assert SoftwareCmac(NIST_KEY).mac(NIST_MESSAGE) == NIST_CMAC[:8]


def test_mac_key_never_leaves_the_token(hsm_keystore: KeyStore) -> None:
    """The imported key is sensitive and not extractable: its value cannot be read back."""
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    import_mac_key(hsm_keystore.owner, "acq", bytes(range(16)))

    def attributes(session: pkcs11.Session) -> tuple[bool, bool]:
        key = session.get_key(object_class=ObjectClass.SECRET_KEY, label="etika-psp-mac-acq")
        return key[Attribute.SENSITIVE], key[Attribute.EXTRACTABLE]

    assert hsm_keystore.owner.run(attributes, where="test") == (True, False)


def test_a_missing_mac_key_is_named(hsm_keystore: KeyStore) -> None:
    """A connector configured for a MAC whose key was never imported fails when built."""
    with pytest.raises(KeyMissingError, match="etika-psp-mac-nobody"):
        Pkcs11Cmac(hsm_keystore.owner, "nobody")
