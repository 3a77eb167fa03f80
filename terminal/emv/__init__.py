"""EMV kernel: TLV, selection, GPO, records, ODA, restrictions, CVM, risk, action analysis.

The rules implemented are listed in ``terminal/emv/README.md``. Typical use::

    kernel = EmvKernel(kernel_config_from_profile(profile), authoriser=..., pin_entry=...)
    result = await kernel.transact(session, TransactionData(amount=2500, currency_numeric=504))

The names below are loaded on first use (PEP 562): the profile loader checks DOLs with
:mod:`terminal.emv.dol` while loading ``aids.toml``, and commands that only load the profile
(``etika hsm status``) must not pay for importing the whole kernel.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from terminal.emv.config import (
        AidConfig,
        Capk,
        ContactlessLimits,
        KernelConfig,
        TransactionData,
    )
    from terminal.emv.kernel import (
        EmvKernel,
        OnlineAuthoriser,
        OnlineRequest,
        OnlineResponse,
        TransactionResult,
    )
    from terminal.emv.selection import Candidate

__all__ = [
    "AidConfig",
    "Candidate",
    "Capk",
    "ContactlessLimits",
    "EmvKernel",
    "KernelConfig",
    "OnlineAuthoriser",
    "OnlineRequest",
    "OnlineResponse",
    "TransactionData",
    "TransactionResult",
]

_HOME = {
    "AidConfig": "terminal.emv.config",
    "Capk": "terminal.emv.config",
    "ContactlessLimits": "terminal.emv.config",
    "KernelConfig": "terminal.emv.config",
    "TransactionData": "terminal.emv.config",
    "EmvKernel": "terminal.emv.kernel",
    "OnlineAuthoriser": "terminal.emv.kernel",
    "OnlineRequest": "terminal.emv.kernel",
    "OnlineResponse": "terminal.emv.kernel",
    "TransactionResult": "terminal.emv.kernel",
    "Candidate": "terminal.emv.selection",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'terminal.emv' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value
