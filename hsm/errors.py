"""Errors of the PKCS#11 key store.

::

    EtikaError
    └── HsmError                 the key store failed; a generic device or library fault
        ├── ModuleMissingError   the PKCS#11 module cannot be loaded
        ├── TokenMissingError    no token ``etika-terminal`` (run ``etika hsm init``)
        ├── SoftHsmConfInvalidError ``<data-dir>/softhsm/`` or ``softhsm2.conf`` unusable (fix it)
        ├── TokenInitFailedError ``softhsm2-util`` could not create the token
        ├── PinMissingError      no PIN file and no ``ETIKA_HSM_PIN``
        ├── WrongPinError        the token refused the PIN
        │   └── PinLockedError   too many wrong PINs; the security officer must reset it
        ├── KeyMissingError      a key label is not in the token (run ``etika hsm init``)
        ├── KeyImportFailedError a wrapped key did not unwrap, or its check value differs
        ├── TokenFullError       the token has no room for another object
        ├── KeyStoreClosedError  a closed key store was used again
        ├── VaultBlobInvalidError a vault blob, its IV or its associated data was changed
        ├── TokenSpaceExhaustedError no free token left for a PAN's first 6 and last 4 digits
        ├── SignatureInvalidError a signature does not verify under the given public key
        └── EnvelopeInvalidError a P2PE envelope does not decrypt (PSP side)

Every python-pkcs11 exception is mapped to one of these at the session boundary by
:func:`map_pkcs11_error`, through the explicit table :data:`PKCS11_ERROR_MAP`;
``tests/hsm/test_errors.py`` proves that table covers every class python-pkcs11 defines.
No message or field ever carries a PAN, a PIN or key material.
"""

from __future__ import annotations

from typing import Any

import pkcs11.exceptions as p11

from etika_errors import EtikaError

__all__ = [
    "PKCS11_ERROR_MAP",
    "EnvelopeInvalidError",
    "HsmError",
    "KeyImportFailedError",
    "KeyMissingError",
    "KeyStoreClosedError",
    "ModuleMissingError",
    "PinLockedError",
    "PinMissingError",
    "SignatureInvalidError",
    "SoftHsmConfInvalidError",
    "TokenFullError",
    "TokenInitFailedError",
    "TokenMissingError",
    "TokenSpaceExhaustedError",
    "VaultBlobInvalidError",
    "WrongPinError",
    "map_pkcs11_error",
]


class HsmError(EtikaError):
    """Root of the key store's errors; raised as such for device or library faults."""


class ModuleMissingError(HsmError):
    """The PKCS#11 module (shared library) cannot be loaded."""

    def __init__(self, module: str, reason: str) -> None:
        super().__init__(
            f"cannot load the PKCS#11 module {module}: {reason}; "
            "install softhsm2 or set ETIKA_PKCS11_MODULE",
            module=module,
        )


class TokenMissingError(HsmError):
    """No token carries the expected label."""

    def __init__(self, label: str) -> None:
        super().__init__(
            f"no PKCS#11 token labelled {label!r} (check SOFTHSM2_CONF); run etika hsm init",
            label=label,
        )


class TokenInitFailedError(HsmError):
    """Creating the token with ``softhsm2-util`` failed."""


class SoftHsmConfInvalidError(HsmError):
    """``<data-dir>/softhsm/`` cannot be prepared, or its ``softhsm2.conf`` cannot be read or
    names no token directory.

    SoftHSM2 silently falls back to the system-wide configuration when its own cannot be
    parsed, so without this check ``etika hsm init`` would create a second token (new keys)
    outside the data directory.
    """


class PinMissingError(HsmError):
    """No PIN file and no PIN in the environment."""


class WrongPinError(HsmError):
    """The token refused the PIN."""

    def __init__(self, label: str, reason: str = "the PIN is incorrect") -> None:
        super().__init__(
            f"the token {label!r} refused the user PIN ({reason}); check the hsm-pin file "
            "in the data directory or ETIKA_HSM_PIN",
            label=label,
        )


class PinLockedError(WrongPinError):
    """Too many wrong PINs: the security officer must reset the user PIN."""

    def __init__(self, label: str) -> None:
        HsmError.__init__(
            self,
            f"the user PIN of token {label!r} is locked after too many wrong PINs; "
            "the security officer must reset it (softhsm2-util / pkcs11-tool --init-pin)",
            label=label,
        )


class KeyMissingError(HsmError):
    """A key the operation needs is not in the token."""

    def __init__(self, label: str, remedy: str | None = None) -> None:
        super().__init__(
            f"the key {label!r} is not in the token; "
            + (remedy or "run etika hsm init (or etika hsm import for a shared key)"),
            label=label,
        )


class KeyImportFailedError(HsmError):
    """A wrapped key did not unwrap under the transport key, or its KCV differs."""


class TokenFullError(HsmError):
    """The token has no memory left for another object."""

    def __init__(self, label: str = "etika-terminal") -> None:
        super().__init__(
            f"the token {label!r} is full; delete retired key versions or use a larger token",
            label=label,
        )


class KeyStoreClosedError(HsmError):
    """A key store (or its session) was used after ``close()``."""


class VaultBlobInvalidError(HsmError):
    """A vault blob failed authentication: the blob, its IV or its associated data changed."""


class TokenSpaceExhaustedError(HsmError):
    """Every candidate token for this BIN and last 4 digits is bound to another card."""


class SignatureInvalidError(HsmError):
    """A signature does not verify under the given public key."""


class EnvelopeInvalidError(HsmError):
    """A P2PE envelope is malformed or does not decrypt under the PSP's private key."""


# --- mapping python-pkcs11's exceptions ------------------------------------------------

_PIN = "pin"
_TOKEN = "token"  # noqa: S105 (an error kind)
_KEY = "key"
_FULL = "full"
_VAULT = "vault"
_LOCKED = "locked"
_IMPORT = "import"
_MODULE = "module"
_DEVICE = "device"

#: Every exception class of ``pkcs11.exceptions`` and the kind of error it becomes.
#: ``vault`` kinds only become :class:`VaultBlobInvalidError` while opening a vault blob (SoftHSM
#: 2.6.1 reports a failed GCM tag check as ``CKR_GENERAL_ERROR``); elsewhere they are
#: device faults. Kept explicit (no fall-through) so that a new class
#: in a python-pkcs11 upgrade fails ``tests/hsm/test_errors.py`` until it is placed.
PKCS11_ERROR_MAP: dict[type[p11.PKCS11Error], str] = {
    p11.PKCS11Error: _DEVICE,
    p11.AnotherUserAlreadyLoggedIn: _DEVICE,
    p11.AttributeTypeInvalid: _DEVICE,
    p11.AttributeValueInvalid: _DEVICE,
    p11.AttributeReadOnly: _DEVICE,
    p11.AttributeSensitive: _DEVICE,
    p11.ArgumentsBad: _DEVICE,
    p11.DataInvalid: _DEVICE,
    p11.DataLenRange: _DEVICE,
    p11.DomainParamsInvalid: _DEVICE,
    p11.DeviceError: _DEVICE,
    p11.DeviceMemory: _FULL,
    p11.DeviceRemoved: _TOKEN,
    p11.EncryptedDataInvalid: _VAULT,
    p11.EncryptedDataLenRange: _VAULT,
    p11.ExceededMaxIterations: _DEVICE,
    p11.FunctionCancelled: _DEVICE,
    p11.FunctionFailed: _VAULT,
    p11.FunctionRejected: _DEVICE,
    p11.FunctionNotSupported: _DEVICE,
    p11.KeyHandleInvalid: _KEY,
    p11.KeyIndigestible: _DEVICE,
    p11.KeyNeeded: _DEVICE,
    p11.KeyNotNeeded: _DEVICE,
    p11.KeyNotWrappable: _DEVICE,
    p11.KeySizeRange: _DEVICE,
    p11.KeyTypeInconsistent: _DEVICE,
    p11.KeyUnextractable: _DEVICE,
    p11.GeneralError: _VAULT,
    p11.HostMemory: _DEVICE,
    p11.MechanismInvalid: _DEVICE,
    p11.MechanismParamInvalid: _DEVICE,
    p11.MultipleObjectsReturned: _DEVICE,
    p11.MultipleTokensReturned: _DEVICE,
    p11.NoEvent: _DEVICE,
    p11.NoSuchKey: _KEY,
    p11.NoSuchToken: _TOKEN,
    p11.ObjectHandleInvalid: _KEY,
    p11.OperationActive: _DEVICE,
    p11.OperationNotInitialized: _DEVICE,
    p11.PinExpired: _PIN,
    p11.PinIncorrect: _PIN,
    p11.PinInvalid: _PIN,
    p11.PinLenRange: _PIN,
    p11.PinLocked: _LOCKED,
    p11.PinTooWeak: _PIN,
    p11.PublicKeyInvalid: _DEVICE,
    p11.RandomNoRNG: _DEVICE,
    p11.RandomSeedNotSupported: _DEVICE,
    p11.SessionClosed: _DEVICE,
    p11.SessionCount: _DEVICE,
    p11.SessionExists: _DEVICE,
    p11.SessionHandleInvalid: _DEVICE,
    p11.SessionReadOnly: _DEVICE,
    p11.SessionReadOnlyExists: _DEVICE,
    p11.SessionReadWriteSOExists: _DEVICE,
    p11.SignatureLenRange: _DEVICE,
    p11.SignatureInvalid: _DEVICE,
    p11.SlotIDInvalid: _TOKEN,
    p11.TemplateIncomplete: _DEVICE,
    p11.TemplateInconsistent: _DEVICE,
    p11.TokenNotPresent: _TOKEN,
    p11.TokenNotRecognised: _TOKEN,
    p11.TokenWriteProtected: _DEVICE,
    p11.UnwrappingKeyHandleInvalid: _IMPORT,
    p11.UnwrappingKeySizeRange: _IMPORT,
    p11.UnwrappingKeyTypeInconsistent: _IMPORT,
    p11.UserAlreadyLoggedIn: _DEVICE,
    p11.UserNotLoggedIn: _PIN,
    p11.UserPinNotInitialized: _PIN,
    p11.UserTooManyTypes: _DEVICE,
    p11.WrappedKeyInvalid: _IMPORT,
    p11.WrappedKeyLenRange: _IMPORT,
    p11.WrappingKeyHandleInvalid: _IMPORT,
    p11.WrappingKeySizeRange: _IMPORT,
    p11.WrappingKeyTypeInconsistent: _IMPORT,
}


def _kind_of(exc: BaseException) -> str:
    for cls in type(exc).__mro__:
        kind = PKCS11_ERROR_MAP.get(cls)
        if kind is not None:
            return kind
    return _DEVICE


def map_pkcs11_error(
    exc: BaseException,
    *,
    where: str,
    label: str = "etika-terminal",
    key_label: str | None = None,
    opening_vault: bool = False,
) -> HsmError:
    """The project error for a python-pkcs11 exception raised while doing ``where``.

    ``where`` says what we were doing ("signing with etika-sign-v1"); it never holds card
    data. Callers ``raise map_pkcs11_error(exc, where=...) from exc``.
    """
    if isinstance(exc, HsmError):
        return exc
    kind = _kind_of(exc)
    name = type(exc).__name__
    fields: dict[str, Any] = {"pkcs11_error": name, "where": where}
    if kind == _PIN:
        return WrongPinError(label, reason=name)
    if kind == _LOCKED:
        return PinLockedError(label)
    if kind == _TOKEN:
        return TokenMissingError(label)
    if kind == _KEY:
        return KeyMissingError(key_label or "(unknown key)")
    if kind == _FULL:
        return TokenFullError(label)
    if kind == _IMPORT:
        return KeyImportFailedError(
            f"the wrapped key did not unwrap while {where} ({name}); check the transport key "
            "and that the file was wrapped with AES key wrap (RFC 3394)",
            **fields,
        )
    if kind == _VAULT and opening_vault:
        return VaultBlobInvalidError(
            f"the vault blob does not authenticate while {where} ({name}): the blob, its IV "
            "or its token/key version was changed; the card must be read again",
            **fields,
        )
    return HsmError(
        f"the PKCS#11 key store failed while {where} ({name}); "
        "run etika hsm status, and check the SoftHSM2 log (syslog)",
        **fields,
    )
