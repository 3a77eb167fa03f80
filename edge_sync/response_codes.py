"""The ISO 8583 response codes that mean "approved": one table for the whole terminal.

The PSP classifier (:mod:`edge_sync.connectors.classify`) decides from it whether a host
approved, and the EMV kernel (:mod:`terminal.emv.online`) whether the ARC the host sent
means approval — so the two can never disagree about a code (issue #12 item 9). Kept in a
module of its own, with no imports, so the kernel reads it without loading the connectors.

ISO 8583:1987 DE 39 (two-character action codes): 00 approved, 08 honour with
identification, 10 approved for partial amount, 11 approved (VIP), 16 approved, update
track 3.
"""

from __future__ import annotations

__all__ = ["ISO_APPROVED", "ISO_APPROVED_ARCS"]

#: DE 39 codes that mean the operation happened.
ISO_APPROVED = frozenset({"00", "08", "10", "11", "16"})
#: The same codes as the EMV kernel sees them: tag 8A, two ASCII bytes.
ISO_APPROVED_ARCS = frozenset(code.encode("ascii") for code in ISO_APPROVED)
