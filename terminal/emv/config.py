"""The kernel's configuration, as plain values (the kernel never reads a profile).

:func:`terminal.emv.profile_adapter.kernel_config_from_profile` builds these from the
terminal profile (``firmware-config/<name>/*.toml``); tests build them directly.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, TypeVar

__all__ = [
    "AidConfig",
    "Capk",
    "ContactlessLimits",
    "KernelConfig",
    "TransactionData",
    "TransactionType",
    "replaced",
]

_Frozen = TypeVar("_Frozen")
#: (id of the original, the changes) → (the original, the copy); see :func:`replaced`.
_REPLACED: dict[tuple[int, tuple[tuple[str, Any], ...]], tuple[Any, Any]] = {}
_REPLACED_MAX = 64


def replaced(original: _Frozen, **changes: Any) -> _Frozen:
    """``dataclasses.replace(original, **changes)``, made once per original and changes.

    For the frozen configurations here: a contactless kernel derives its configuration
    (capabilities, floor limit) on every tap, and copying a :class:`KernelConfig` runs its
    ``__post_init__`` checks again. The copy is equal to a fresh ``replace`` and, being
    frozen, safe to share. The cache keeps the original alive, so its ``id`` cannot be
    reused while it is remembered; it is emptied when it reaches 64 entries.
    """
    key = (id(original), tuple(sorted(changes.items())))
    try:
        hit = _REPLACED.get(key)
    except TypeError:  # an unhashable change: nothing to remember it by
        return replace(original, **changes)  # type: ignore[type-var]
    if hit is not None and hit[0] is original:
        copy: _Frozen = hit[1]
        return copy
    copy = replace(original, **changes)  # type: ignore[type-var]
    if len(_REPLACED) >= _REPLACED_MAX:
        _REPLACED.clear()
    _REPLACED[key] = (original, copy)
    return copy


@dataclass(frozen=True, slots=True)
class Capk:
    """A certification authority public key (EMV 4.4 Book 2 §5.1, Annex A2)."""

    rid: bytes
    index: int
    modulus: bytes
    exponent: bytes
    expiry: date | None = None
    #: Serial numbers (3 bytes) of issuer certificates this CA key signed that are revoked
    #: (the certification revocation list, Book 2 §5.3 step 10).
    revoked_serials: frozenset[bytes] = frozenset()

    def checksum(self) -> bytes:
        """SHA-1(RID || index || modulus || exponent) (Book 2 §11.2.2)."""
        return hashlib.sha1(  # noqa: S324 - the EMV CAPK checksum is defined as SHA-1
            self.rid + bytes([self.index]) + self.modulus + self.exponent
        ).digest()


@dataclass(frozen=True, slots=True)
class ContactlessLimits:
    """Reader limits for the contactless kernel, minor units (Visa qVSDC / EMV Book A)."""

    transaction_limit: int | None = None
    floor_limit: int = 0
    cvm_required_limit: int = 5000


@dataclass(frozen=True, slots=True)
class AidConfig:
    """One application the terminal supports (Book 1 §12.3) with its risk parameters."""

    aid: bytes
    label: str = ""
    network: str = ""
    partial_match: bool = True
    application_version: bytes = b"\x00\x8c"
    tac_denial: bytes = bytes(5)
    tac_online: bytes = bytes(5)
    tac_default: bytes = bytes(5)
    floor_limit: int = 0
    random_selection_threshold: int = 0
    target_percent: int = 0
    max_target_percent: int = 0
    default_tdol: bytes = b""
    default_ddol: bytes = bytes.fromhex("9F3704")
    contactless: bool = False
    contactless_limits: ContactlessLimits = field(default_factory=ContactlessLimits)

    def __post_init__(self) -> None:
        if not 5 <= len(self.aid) <= 16:
            raise ValueError(f"an AID is 5 to 16 bytes, got {len(self.aid)}")
        for name in ("tac_denial", "tac_online", "tac_default"):
            if len(getattr(self, name)) != 5:
                raise ValueError(f"{name} must be 5 bytes")
        if not 0 <= self.target_percent <= self.max_target_percent <= 99 and (
            self.max_target_percent or self.target_percent
        ):
            raise ValueError("need 0 <= target_percent <= max_target_percent <= 99")


class TransactionType:
    """Values of 9C (ISO 8583 processing code, first two digits)."""

    PURCHASE = 0x00
    CASH = 0x01
    CASHBACK = 0x09
    REFUND = 0x20


@dataclass(frozen=True, slots=True)
class KernelConfig:
    """Terminal data (Book 4 Annex A) and the kernel's supported applications and keys."""

    aids: tuple[AidConfig, ...]
    capks: tuple[Capk, ...] = ()
    #: 9F35 as its two decimal digits (n2): 22 = attended, offline with online capability.
    terminal_type: int = 22
    capabilities: bytes = bytes.fromhex("E068C8")
    additional_capabilities: bytes = bytes.fromhex("6000F0A001")
    country_code: int = 504
    terminal_id: str = "ETK00001"
    merchant_id: str = "MA0000000012345"
    merchant_name_location: str = ""
    mcc: str = "5411"
    ifd_serial: str = "ETKSIM01"
    acquirer_id: str = ""
    #: PANs on the terminal exception file (hot list), clear only in memory.
    exception_file: frozenset[str] = frozenset()
    #: Source of the unpredictable number and random selection; injectable for tests.
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    #: Whether a cardholder may choose among several applications (Book 1 §12.4).
    cardholder_confirmation: bool = True

    def __post_init__(self) -> None:
        if len(self.capabilities) != 3:
            raise ValueError("9F33 terminal capabilities are 3 bytes")
        if not 11 <= self.terminal_type <= 36:
            raise ValueError("9F35 terminal type is two decimal digits, 11 to 36")
        if len(self.additional_capabilities) != 5:
            raise ValueError("9F40 additional terminal capabilities are 5 bytes")

    # -- capabilities (Book 4 Annex A2) --------------------------------------------------

    def supports(self, byte: int, bit: int) -> bool:
        return bool(self.capabilities[byte - 1] & (1 << (bit - 1)))

    @property
    def online_capable(self) -> bool:
        """Terminal type x1/x2 are online capable, x3 offline only, x4–x6 unattended same."""
        return self.terminal_type % 10 in (1, 2, 4, 5)

    @property
    def offline_only(self) -> bool:
        return self.terminal_type % 10 in (3, 6)

    @property
    def is_atm(self) -> bool:
        """Unattended financial-institution terminals (14/15/16) are ATMs (Book 4 Annex A1)."""
        return self.terminal_type in (14, 15, 16)

    def capk(self, rid: bytes, index: int) -> Capk | None:
        for key in self.capks:
            if key.rid == rid and key.index == index:
                return key
        return None


@dataclass(frozen=True, slots=True)
class TransactionData:
    """What the cashier entered for one transaction."""

    amount: int
    currency_numeric: int
    currency_exponent: int = 2
    transaction_type: int = TransactionType.PURCHASE
    amount_other: int = 0
    when: datetime = field(default_factory=datetime.now)
    sequence_counter: int = 1
    #: The terminal cannot reach its host (``--offline``): the unable-to-go-online path.
    online_available: bool = True
    merchant_forced_online: bool = False

    def __post_init__(self) -> None:
        if self.amount < 0 or self.amount_other < 0:
            raise ValueError("amounts must be >= 0")
        if not 0 < self.currency_numeric < 1000:
            raise ValueError("currency_numeric is an ISO 4217 numeric code (1-999)")
