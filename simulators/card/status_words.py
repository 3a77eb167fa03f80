"""The status words the simulated card answers with (ISO/IEC 7816-4 §5.1.3, EMV Book 3 §6.3.5).

:class:`CardAnswer` lets a command handler stop early with one of them.
"""

from __future__ import annotations

__all__ = [
    "SW_AUTH_FAILED",
    "SW_BLOCKED",
    "SW_CLA",
    "SW_CONDITIONS",
    "SW_FUNCTION_NOT_SUPPORTED",
    "SW_INS",
    "SW_MAC_FAILED",
    "SW_NOT_FOUND",
    "SW_NO_DATA",
    "SW_NO_RECORD",
    "SW_OK",
    "SW_PIN_BLOCKED",
    "SW_WRONG_LENGTH",
    "SW_WRONG_P1P2",
    "CardAnswer",
]

SW_OK = b"\x90\x00"
SW_BLOCKED = b"\x62\x83"
SW_WRONG_LENGTH = b"\x67\x00"
SW_CONDITIONS = b"\x69\x85"
SW_MAC_FAILED = b"\x69\x88"
SW_PIN_BLOCKED = b"\x69\x83"
SW_FUNCTION_NOT_SUPPORTED = b"\x6a\x81"
SW_NOT_FOUND = b"\x6a\x82"
SW_NO_RECORD = b"\x6a\x83"
SW_WRONG_P1P2 = b"\x6a\x86"
SW_NO_DATA = b"\x6a\x88"
SW_INS = b"\x6d\x00"
SW_CLA = b"\x6e\x00"
SW_AUTH_FAILED = b"\x63\x00"


class CardAnswer(Exception):
    """Short-circuit a handler with a status word."""

    def __init__(self, response: bytes) -> None:
        super().__init__(response.hex())
        self.response = response
