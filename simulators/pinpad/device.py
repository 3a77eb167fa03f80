"""The PIN pad's secure side: its DUKPT key and what the cardholder types.

This is the only place the clear PIN exists: :class:`PinPadDevice` turns the scripted
PIN into an enciphered block under the next DUKPT key and hands out nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.pinpad.messages import (
    MAX_PART,
    BlockPartRequest,
    BlockPartResponse,
    IccKeyPartRequest,
    LoadKeyRequest,
    LoadKeyResponse,
    OfflinePinRequest,
    OfflinePinResponse,
    PinEntryRequest,
    PinEntryResponse,
    PinResult,
    StatusResponse,
)
from simulators.pinpad.dukpt import DukptOriginator, KsnExhaustedError
from simulators.pinpad.offline_pin import encipher_pin_for_card
from simulators.pinpad.pinblock import encipher_pin_block

__all__ = [
    "DEFAULT_AES_BDK",
    "DEFAULT_AES_KSN",
    "DEFAULT_PIN",
    "DEFAULT_TDES_BDK",
    "DEFAULT_TDES_KSN",
    "PinPadDevice",
]

#: The ANSI X9.24-1:2009 A.4 test BDK and initial KSN (TDES DUKPT, format 0).
DEFAULT_TDES_BDK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
DEFAULT_TDES_KSN = bytes.fromhex("FFFF9876543210E00000")
#: The ANSI X9.24-3:2017 B.1 test BDK and initial key ID, counter 0 (AES DUKPT, format 4).
DEFAULT_AES_BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
DEFAULT_AES_KSN = bytes.fromhex("123456789012345600000000")
DEFAULT_PIN = "1234"

MODEL = "ETIKA-SIM-PP1"
FIRMWARE = "1.0"


@dataclass
class PinPadDevice:
    """Key storage, KSN counter and the scripted cardholder PIN."""

    originator: DukptOriginator | None
    pin: str = field(default=DEFAULT_PIN, repr=False)
    display_text: str = ""
    allow_key_load: bool = True
    #: Offline enciphered PIN: the ICC key parts received (Z63) and the last block (Z66).
    icc_key_parts: dict[int, bytes] = field(default_factory=dict, repr=False)
    icc_key_total: int = 0
    offline_block: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not (self.pin.isascii() and self.pin.isdigit() and 4 <= len(self.pin) <= 12):
            raise ValueError("the scripted PIN must be 4 to 12 digits")

    @classmethod
    def from_bdk(cls, bdk: bytes, ksn: bytes, pin: str = DEFAULT_PIN) -> PinPadDevice:
        """Inject the initial key as a key-injection facility would (test keys only)."""
        return cls(DukptOriginator.from_bdk(bdk, ksn), pin=pin)

    def status(self) -> StatusResponse:
        fields = {"model": MODEL, "firmware": FIRMWARE}
        if self.originator is None:
            fields["scheme"] = "none"
        else:
            fields["scheme"] = "aes" if self.originator.is_aes else "tdes"
            fields["format"] = str(self.originator.pin_block_format)
            fields["ksn"] = self.originator.ksn.hex().upper()
        return StatusResponse(fields)

    def load_key(self, request: LoadKeyRequest) -> LoadKeyResponse:
        if not self.allow_key_load:
            return LoadKeyResponse(ok=False)
        self.originator = DukptOriginator(request.initial_key, request.ksn)
        return LoadKeyResponse(ok=True)

    def encipher_pin(self, request: PinEntryRequest) -> PinEntryResponse:
        """What the pad answers once the cardholder pressed ENTER on the scripted PIN."""
        if self.originator is None:
            return PinEntryResponse(PinResult.NO_KEY)
        if not request.min_length <= len(self.pin) <= request.max_length:
            return PinEntryResponse(PinResult.BAD_REQUEST)
        try:
            ksn, key = self.originator.next_pin_key()
        except KsnExhaustedError:
            return PinEntryResponse(PinResult.KEY_EXHAUSTED)
        pin_format = self.originator.pin_block_format
        block = encipher_pin_block(pin_format, key, self.pin, request.pan)
        return PinEntryResponse(PinResult.OK, pin_format=pin_format, ksn=ksn, pin_block=block)

    def icc_key_part(self, request: IccKeyPartRequest) -> None:
        """Keep one ``Z63`` part; part 1 starts a new key."""
        if request.part == 1:
            self.icc_key_parts = {}
        self.icc_key_parts[request.part] = request.data
        self.icc_key_total = request.parts

    def encipher_offline_pin(self, request: OfflinePinRequest) -> OfflinePinResponse:
        """What the pad answers once the cardholder entered the PIN for an offline VERIFY."""
        parts = [self.icc_key_parts.get(i) for i in range(1, self.icc_key_total + 1)]
        if not self.icc_key_total or any(part is None for part in parts):
            return OfflinePinResponse(PinResult.BAD_REQUEST)  # no complete ICC key
        if not request.min_length <= len(self.pin) <= request.max_length:
            return OfflinePinResponse(PinResult.BAD_REQUEST)
        modulus = b"".join(part for part in parts if part is not None)
        try:
            block = encipher_pin_for_card(self.pin, modulus, request.exponent, request.challenge)
        except ValueError:
            return OfflinePinResponse(PinResult.BAD_REQUEST)
        self.offline_block = block
        return OfflinePinResponse(PinResult.OK, parts=-(-len(block) // MAX_PART))

    def block_part(self, request: BlockPartRequest) -> BlockPartResponse | None:
        """Part ``request.part`` of the last enciphered block, or ``None`` if there is none."""
        chunk = self.offline_block[(request.part - 1) * MAX_PART : request.part * MAX_PART]
        return BlockPartResponse(request.part, chunk) if chunk else None
