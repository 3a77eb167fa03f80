"""What a simulated card remembers: per application across power cycles, per transaction until
the next SELECT or power-off; and the cryptogram types it answers GENERATE AC with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulators.card.personalise import Personalised

__all__ = ["AC_AAC", "AC_ARQC", "AC_TC", "AppState", "Transaction"]

AC_AAC, AC_TC, AC_ARQC = 0x00, 0x40, 0x80


@dataclass
class AppState:
    """What survives power cycles: counters, PIN tries, the blocked flag."""

    personalised: Personalised
    atc: int = 0
    last_online_atc: int = 0
    pin_tries: int = 3
    blocked: bool = False
    consecutive_offline: int = 0
    lcol: int = 0
    ucol: int = 0



@dataclass
class Transaction:
    """What one selection-to-GENERATE-AC run holds (reset by SELECT and power-off)."""

    app: AppState | None = None
    directory: bytes | None = None  # PSE or PPSE selected
    gpo_done: bool = False
    pdol_data: bytes = b""
    cdol1_data: bytes = b""
    first_ac: int | None = None
    arqc: bytes = b""
    second_done: bool = False
    external_auth: bool | None = None  # None: not performed; True: ARPC ok
    cvr1: int = 0x80  # 2nd GENERATE AC not requested yet (CVR byte 2 b8-7 = 10)
    cvr2: int = 0
    scripts: int = 0
    offline_pin_ok: bool = False
    offline_pin_failed: bool = False
    selected_index: int = -1
    extra: dict[str, bytes] = field(default_factory=dict)
