"""Reading the data of a command APDU: its body, the values of a DOL, the amount, the ATC.

The card gets its terminal data as a DOL's concatenated values (Book 3 §5.4); these
helpers cut them back into objects.
"""

from __future__ import annotations

from simulators.card.card_state import AppState
from terminal.emv import dol

__all__ = ["amount_of", "atc_bytes", "command_data", "dol_values"]


def command_data(apdu: bytes) -> bytes:
    if len(apdu) <= 5:
        return b""
    return apdu[5 : 5 + apdu[4]]


def dol_values(dol_bytes: bytes, data: bytes) -> dict[int, bytes]:
    values: dict[int, bytes] = {}
    offset = 0
    for tag, length in dol.parse_dol(dol_bytes):
        values[tag] = data[offset : offset + length]
        offset += length
    return values


def amount_of(values: dict[int, bytes]) -> int:
    raw = values.get(0x9F02, b"")
    try:
        return int(raw.hex() or "0")
    except ValueError:
        return 0


def atc_bytes(state: AppState) -> bytes:
    return state.atc.to_bytes(2, "big")
