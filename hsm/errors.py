"""Errors of the PKCS#11 key store.

::

    EtikaError
    └── HsmError          (leaves added by the key store: module missing, token missing,
                           wrong PIN, key missing, token full, ...)

Every python-pkcs11 exception is mapped to one of these at the session boundary.
"""

from __future__ import annotations

from etika_errors import EtikaError

__all__ = ["HsmError"]


class HsmError(EtikaError):
    """Root of the key store's errors."""
