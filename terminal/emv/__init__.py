"""EMV kernel: TLV, selection, GPO, records, ODA, restrictions, CVM, risk, action analysis.

The rules implemented are listed in ``terminal/emv/README.md``. Typical use::

    kernel = EmvKernel(kernel_config_from_profile(profile), authoriser=..., pin_entry=...)
    result = await kernel.transact(session, TransactionData(amount=2500, currency_numeric=504))
"""

from terminal.emv.config import AidConfig, Capk, ContactlessLimits, KernelConfig, TransactionData
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
