"""ISO 8583 MAC keys in the token: AES-CMAC computed by the HSM (issue #12 item 6).

Each acquirer shares one AES key with the terminal (a terminal authentication key, TAK),
stored in the token under ``etika-psp-mac-<connector>``: sign/verify only, sensitive and
not extractable, so its value never leaves the token after :func:`import_mac_key`. The
connector asks :class:`Pkcs11Cmac` for the 8-byte AES-CMAC (CKM_AES_CMAC, NIST SP 800-38B,
truncated) of each message (:mod:`edge_sync.connectors.iso8583_mac` places it in DE 64/128).

A MAC is one short PKCS#11 call, made on the caller's thread under the token lock.
"""

from __future__ import annotations

from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from hsm.errors import KeyMissingError
from hsm.session import SessionOwner

__all__ = ["MAC_KEY_PREFIX", "Pkcs11Cmac", "import_mac_key", "mac_key_label"]

MAC_KEY_PREFIX = "etika-psp-mac-"


def mac_key_label(connector: str) -> str:
    """The token label of ``connector``'s MAC key."""
    return MAC_KEY_PREFIX + connector


def import_mac_key(owner: SessionOwner, connector: str, value: bytes) -> None:
    """Put ``connector``'s AES MAC key in the token (replacing an older one), sign/verify
    only and never extractable."""
    if len(value) not in (16, 24, 32):
        raise ValueError("an AES MAC key is 16, 24 or 32 bytes")
    label = mac_key_label(connector)

    def store(session: pkcs11.Session) -> None:
        for old in session.get_objects({Attribute.LABEL: label,
                                        Attribute.CLASS: ObjectClass.SECRET_KEY}):
            old.destroy()
        session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
            Attribute.LABEL: label, Attribute.VALUE: value, Attribute.TOKEN: True,
            Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True, Attribute.VERIFY: True, Attribute.ENCRYPT: False,
            Attribute.DECRYPT: False, Attribute.WRAP: False, Attribute.UNWRAP: False,
        })

    owner.run(store, where=f"importing the MAC key of {connector}", key_label=label)


class Pkcs11Cmac:
    """An :class:`edge_sync.connectors.iso8583_mac.MessageAuthenticator` over the token."""

    def __init__(self, owner: SessionOwner, connector: str) -> None:
        self._owner = owner
        self.label = mac_key_label(connector)
        # Fail at build time, not on the first payment, when the key was never imported.
        owner.run(self._key, where="finding the MAC key", key_label=self.label)

    def _key(self, session: pkcs11.Session) -> Any:  # python-pkcs11's key types are untyped
        try:
            return session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES,
                                   label=self.label)
        except pkcs11.NoSuchKey:
            raise KeyMissingError(self.label, remedy="import the acquirer's MAC key into the "
                                                "token (hsm.mac.import_mac_key)") from None

    def mac(self, data: bytes) -> bytes:
        def compute(session: pkcs11.Session) -> bytes:
            return bytes(self._key(session).sign(data, mechanism=Mechanism.AES_CMAC))[:8]

        return self._owner.run(compute, where="computing an ISO 8583 MAC", key_label=self.label)

    def __repr__(self) -> str:
        return f"Pkcs11Cmac({self.label})"
