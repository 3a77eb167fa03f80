"""Create a token in a free slot of an already-loaded PKCS#11 module (``C_InitToken``).

python-pkcs11 0.10.1 wraps ``C_InitPIN`` and ``C_SetPIN`` but not ``C_InitToken``, and
SoftHSM2 only shows a token that another process (``softhsm2-util``) created after the
next ``C_Initialize``, which would close every session of the process. So this module makes
that one call by hand, through ``ctypes`` on the same shared library: ``dlopen`` hands back
the handle python-pkcs11 already initialised, so the token appears in the running module
and the PINs never leave the process (no argv, no environment). The user PIN is then set
by the security officer with python-pkcs11's own ``init_pin``.

Only for SoftHSM2 (a development token): creating a token on a real HSM is the vendor's
key ceremony.
"""

from __future__ import annotations

import ctypes

import pkcs11
import pkcs11.exceptions as p11

from hsm import session as sess
from hsm.errors import TokenInitFailedError, map_pkcs11_error

__all__ = ["init_token_in_free_slot"]

#: PKCS#11 v2.40 §4.5: CK_TOKEN_INFO.label is 32 bytes of UTF-8, padded with spaces.
LABEL_BYTES = 32


def init_token_in_free_slot(module: str, label: str, so_pin: str, user_pin: str) -> None:
    """Initialise the first uninitialised slot of ``module`` as token ``label`` with its PINs."""
    encoded = label.encode("utf-8")
    if not encoded or len(encoded) > LABEL_BYTES:
        raise TokenInitFailedError(f"a token label is 1 to {LABEL_BYTES} bytes, not {label!r}")
    for pin in (so_pin, user_pin):
        if not 4 <= len(pin) <= 255:
            raise TokenInitFailedError("SoftHSM2 PINs are 4 to 255 characters; fix the PIN file")
    lib = sess.load_module(module)
    with sess.PKCS11_LOCK:
        try:
            free = [slot for slot in lib.get_slots()
                    if not slot.get_token().flags & pkcs11.TokenFlag.TOKEN_INITIALIZED]
        except p11.PKCS11Error as exc:
            raise map_pkcs11_error(exc, where="listing the slots") from exc
        if not free:
            raise TokenInitFailedError(f"{module} has no free slot for a new token {label!r}")
        raw = ctypes.CDLL(module)  # the same, already-initialised library (see above)
        raw.C_InitToken.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong,
                                    ctypes.c_char_p]
        raw.C_InitToken.restype = ctypes.c_ulong
        so = so_pin.encode("utf-8")
        rv = raw.C_InitToken(free[0].slot_id, so, len(so), encoded.ljust(LABEL_BYTES, b" "))
        if rv != 0:
            raise TokenInitFailedError(
                f"C_InitToken for {label!r} failed with CKR 0x{rv:08x}", label=label)
        try:
            token = lib.get_token(token_label=label)
            with token.open(rw=True, so_pin=so_pin) as session:
                session.init_pin(user_pin)
        except p11.PKCS11Error as exc:
            raise map_pkcs11_error(exc, where="setting the new token's user PIN",
                                   label=label) from exc
