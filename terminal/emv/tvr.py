"""Terminal Verification Results (95) and Transaction Status Information (9B).

Bit-exact per EMV 4.4 Book 3 Annex C5 (TVR, 5 bytes) and C6 (TSI, 2 bytes). Each bit is
named by ``(byte, bit)`` with bytes counted from 1 (leftmost) and bits b8 (0x80) to b1
(0x01), as the books draw them. EMV 4.4 also defines XDA, biometric and ECC bits; this
kernel does none of those, so it never sets them (nor any RFU bit). Byte 3 b3 is named
"Online CVM captured" in 4.4 ("Online PIN entered" before); here online PIN is the only
online CVM.
"""

from __future__ import annotations

import enum

__all__ = ["Tsi", "TsiBit", "Tvr", "TvrBit"]


class TvrBit(enum.Enum):
    """(byte, bit) of each TVR bit (Book 3 Annex C5)."""

    def __init__(self, byte: int, bit: int) -> None:
        # Index and mask kept on the member: ``.value`` is a property lookup, and the
        # kernel tests these bits a few hundred times per transaction.
        self.index = byte - 1
        self.mask = 1 << (bit - 1)

    # Byte 1
    ODA_NOT_PERFORMED = (1, 8)
    SDA_FAILED = (1, 7)
    ICC_DATA_MISSING = (1, 6)
    CARD_ON_EXCEPTION_FILE = (1, 5)
    DDA_FAILED = (1, 4)
    CDA_FAILED = (1, 3)
    SDA_SELECTED = (1, 2)
    # Byte 2
    DIFFERENT_APP_VERSIONS = (2, 8)
    EXPIRED_APPLICATION = (2, 7)
    APPLICATION_NOT_YET_EFFECTIVE = (2, 6)
    SERVICE_NOT_ALLOWED = (2, 5)
    NEW_CARD = (2, 4)
    # Byte 3
    CARDHOLDER_VERIFICATION_FAILED = (3, 8)
    UNRECOGNISED_CVM = (3, 7)
    PIN_TRY_LIMIT_EXCEEDED = (3, 6)
    PIN_PAD_NOT_PRESENT = (3, 5)
    PIN_NOT_ENTERED = (3, 4)
    ONLINE_PIN_ENTERED = (3, 3)  # 4.4: "Online CVM captured"
    # Byte 4
    FLOOR_LIMIT_EXCEEDED = (4, 8)
    LCOL_EXCEEDED = (4, 7)
    UCOL_EXCEEDED = (4, 6)
    RANDOMLY_SELECTED_ONLINE = (4, 5)
    MERCHANT_FORCED_ONLINE = (4, 4)
    # Byte 5
    DEFAULT_TDOL_USED = (5, 8)
    ISSUER_AUTHENTICATION_FAILED = (5, 7)
    SCRIPT_FAILED_BEFORE_FINAL_GENAC = (5, 6)
    SCRIPT_FAILED_AFTER_FINAL_GENAC = (5, 5)


class TsiBit(enum.Enum):
    """(byte, bit) of each TSI bit (Book 3 Annex C6)."""

    def __init__(self, byte: int, bit: int) -> None:
        self.index = byte - 1
        self.mask = 1 << (bit - 1)

    ODA_PERFORMED = (1, 8)
    CARDHOLDER_VERIFICATION_PERFORMED = (1, 7)
    CARD_RISK_MANAGEMENT_PERFORMED = (1, 6)
    ISSUER_AUTHENTICATION_PERFORMED = (1, 5)
    TERMINAL_RISK_MANAGEMENT_PERFORMED = (1, 4)
    SCRIPT_PROCESSING_PERFORMED = (1, 3)


class _Bits:
    size: int

    def __init__(self, value: bytes | None = None) -> None:
        raw = bytes(self.size) if value is None else bytes(value)
        if len(raw) != self.size:
            raise ValueError(f"{type(self).__name__} is {self.size} bytes, got {len(raw)}")
        self._value = bytearray(raw)

    def set(self, bit: TvrBit | TsiBit) -> None:
        self._value[bit.index] |= bit.mask

    def __contains__(self, bit: TvrBit | TsiBit) -> bool:
        return bool(self._value[bit.index] & bit.mask)

    def __bytes__(self) -> bytes:
        return bytes(self._value)

    def hex(self) -> str:
        return self._value.hex().upper()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hex()})"


class Tvr(_Bits):
    """The 5-byte TVR; ``tvr.set(TvrBit.X)``, ``TvrBit.X in tvr``, ``bytes(tvr)``."""

    size = 5

    def matches(self, action_code: bytes) -> bool:
        """Whether any TVR bit is also set in a 5-byte TAC/IAC (Book 3 §10.7)."""
        return any(a & b for a, b in zip(self._value, action_code, strict=True))

    def set_bits(self) -> list[TvrBit]:
        return [bit for bit in TvrBit if bit in self]


class Tsi(_Bits):
    """The 2-byte TSI."""

    size = 2
