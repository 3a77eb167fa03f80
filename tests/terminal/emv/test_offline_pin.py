"""Offline enciphered PIN, CVM 04/05 (#13 item 11): the pad enciphers, the terminal relays.

EMV 4.4 Book 3 §10.5.1 (offline PIN processing, PIN try counter, TVR byte 3), Book 3
§6.5.12 (VERIFY P2 88) and Book 2 §7 (the block enciphered under the ICC key).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

import simulators.card.reader as reader_module
from drivers.errors import PinEntryCancelledError, PinPadNoAnswerError
from drivers.pinpad.messages import (
    BlockPartRequest,
    BlockPartResponse,
    IccKeyPartRequest,
    OfflinePinRequest,
    OfflinePinResponse,
    PinResult,
    decode_request,
    decode_response,
)
from simulators.pinpad.device import DEFAULT_TDES_BDK, DEFAULT_TDES_KSN, PinPadDevice
from simulators.pinpad.faults import parse_faults
from simulators.pinpad.inprocess import SimulatedPinPad
from terminal.emv import offline_pin
from terminal.emv.config import KernelConfig, TransactionData
from terminal.emv.kernel import EmvKernel
from terminal.emv.kernel import OfflinePinRequest as KernelPinRequest
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.emv.tvr import Tvr, TvrBit
from terminal.profile import load_profile

pytestmark = pytest.mark.filterwarnings("ignore:.*TripleDES.*")

DEFAULT = Path(__file__).resolve().parents[3] / "firmware-config" / "default"
VERIFY_ENCIPHERED = bytes.fromhex("00200088")


@pytest.fixture(scope="module")
def config() -> KernelConfig:
    return replace(kernel_config_from_profile(load_profile(DEFAULT)),
                   random_bytes=lambda n: b"\xff" * n)


def _pad(pin: str = "1234", faults: str = "") -> SimulatedPinPad:
    device = PinPadDevice.from_bdk(DEFAULT_TDES_BDK, DEFAULT_TDES_KSN, pin=pin)
    return SimulatedPinPad(device, parse_faults(faults) if faults else None)


def _callback(pad: SimulatedPinPad, seen: list[KernelPinRequest] | None = None
              ) -> offline_pin.OfflinePinCallback:
    async def call(request: KernelPinRequest) -> bytes:
        if seen is not None:
            seen.append(request)
        return await pad.encipher_pin_for_card(request.modulus, request.exponent,
                                               request.challenge, request.amount,
                                               request.currency_numeric)
    return call


class Till:
    """One card (in-process simulator) used for several transactions, like a real card."""

    def __init__(self, card: str = "domestic-visa") -> None:
        self.reader = reader_module.in_process_reader(card)

    async def pay(self, config: KernelConfig, pad: SimulatedPinPad | None,
                  seen: list[KernelPinRequest] | None = None) -> tuple[object, list[bytes]]:
        session = await self.reader.connect(await self.reader.wait_for_card())
        before = len(self.reader.sent)
        data = TransactionData(amount=2500, currency_numeric=504,
                               when=datetime(2026, 11, 22), online_available=False)
        kernel = EmvKernel(config, offline_pin=_callback(pad, seen) if pad else None)
        result = await kernel.transact(session, data)  # type: ignore[arg-type]
        await session.close()
        return result, self.reader.sent[before:]


def _verifies(sent: list[bytes]) -> list[bytes]:
    return [c for c in sent if c[:4] == VERIFY_ENCIPHERED]


async def test_right_pin_is_verified_by_the_card(config: KernelConfig) -> None:
    """CVM 44 03 with the right PIN: VERIFY 00 20 00 88 succeeds, 9F34 = 44 03 02."""
    seen: list[KernelPinRequest] = []
    result, sent = await Till().pay(config, _pad("1234"), seen)
    assert result.cvm == "offline_enciphered_pin"  # type: ignore[attr-defined]
    assert result.cvm_results == "440302"  # type: ignore[attr-defined]
    tvr = Tvr(bytes.fromhex(result.tvr))  # type: ignore[attr-defined]
    assert TvrBit.CARDHOLDER_VERIFICATION_FAILED not in tvr
    (verify,) = _verifies(sent)
    assert verify[4] == 128 == len(seen[0].modulus)  # the ICC key: 1024 bits
    assert "1234" not in repr(seen[0])  # what the terminal handles carries no PIN


async def test_wrong_pin_counts_down_then_blocks(config: KernelConfig) -> None:
    """Wrong PINs: 63C2, 63C1, then 63C0 sets "PIN try limit exceeded"; the next
    transaction reads 9F17 = 0 and asks for no PIN at all (Book 3 §10.5.1)."""
    till = Till()
    statuses = []
    for _ in range(3):
        result, sent = await till.pay(config, _pad("9999"))
        assert len(_verifies(sent)) == 1
        statuses.append(result)
    tvrs = [Tvr(bytes.fromhex(r.tvr)) for r in statuses]  # type: ignore[attr-defined]
    assert [TvrBit.PIN_TRY_LIMIT_EXCEEDED in t for t in tvrs] == [False, False, True]
    assert all(r.cvm_results != "440302" for r in statuses)  # type: ignore[attr-defined]
    blocked, sent = await till.pay(config, _pad("1234"))  # even the right PIN: too late
    assert _verifies(sent) == []
    assert TvrBit.PIN_TRY_LIMIT_EXCEEDED in Tvr(bytes.fromhex(blocked.tvr))  # type: ignore[attr-defined]


async def test_right_pin_resets_the_counter(config: KernelConfig) -> None:
    """A wrong PIN then the right one: the card's counter is back to its limit (9F17)."""
    till = Till()
    await till.pay(config, _pad("9999"))
    await till.pay(config, _pad("1234"))
    state = till.reader.card.apps[0]  # type: ignore[attr-defined]
    assert state.pin_tries == state.personalised.app.pin_try_limit


async def test_cancelled_pin_entry_sets_pin_not_entered(config: KernelConfig) -> None:
    """The cardholder cancels on the pad: TVR "PIN not entered", no VERIFY sent."""
    result, sent = await Till().pay(config, _pad(faults="cancel=1"))
    assert TvrBit.PIN_NOT_ENTERED in Tvr(bytes.fromhex(result.tvr))  # type: ignore[attr-defined]
    assert _verifies(sent) == []


async def test_without_an_offline_pad_the_cvm_is_skipped(config: KernelConfig) -> None:
    """No offline-capable pad: condition 03 (terminal supports) is false, no PIN asked."""
    result, sent = await Till().pay(config, None)
    assert _verifies(sent) == [] and result.cvm == "signature"  # type: ignore[attr-defined]


async def test_pad_failure_means_pin_pad_not_working(config: KernelConfig) -> None:
    """A pad that fails mid-entry sets "PIN pad not present or not working"."""
    async def broken(request: KernelPinRequest) -> bytes:
        raise PinPadNoAnswerError("no answer", port="test")

    till = Till()
    session = await till.reader.connect(await till.reader.wait_for_card())
    data = TransactionData(amount=2500, currency_numeric=504, when=datetime(2026, 11, 22),
                           online_available=False)
    result = await EmvKernel(config, offline_pin=broken).transact(session, data)  # type: ignore[arg-type]
    assert TvrBit.PIN_PAD_NOT_PRESENT in Tvr(bytes.fromhex(result.tvr))


async def test_plaintext_offline_pin_stays_refused(config: KernelConfig) -> None:
    """The CB card's CVM 41 03 (plaintext offline PIN if supported) is skipped: no VERIFY."""
    result, sent = await Till("cb").pay(config, _pad("1234"))
    assert not [c for c in sent if c[:2] == b"\x00\x20"]
    assert not result.cvm_results.startswith("41")  # type: ignore[attr-defined]
    assert config.capabilities[1] & 0x80 == 0  # 9F33 tells the card: no plaintext PIN


@pytest.mark.parametrize(
    "message",
    [
        IccKeyPartRequest(2, 3, bytes(range(112))),
        OfflinePinRequest(b"\x03", bytes(8), 2500, 504, 30, 4, 12),
        OfflinePinRequest(b"\x01\x00\x01", b"\xaa" * 8, 0, 978, 300),
        BlockPartRequest(3),
    ],
)
def test_offline_pin_requests_round_trip(message: object) -> None:
    """Z63/Z64/Z66 encode and decode to the same request (drivers/PROTOCOL.md §3.3)."""
    encoded = message.encode()  # type: ignore[attr-defined]
    assert len(encoded) <= 240 and decode_request(encoded) == message


@pytest.mark.parametrize(
    "message",
    [
        OfflinePinResponse(PinResult.OK, 2),
        OfflinePinResponse(PinResult.CANCELLED),
        BlockPartResponse(1, bytes(112)),
    ],
)
def test_offline_pin_answers_round_trip(message: object) -> None:
    """73 and 74 encode and decode to the same answer, within one 240-byte packet."""
    encoded = message.encode()  # type: ignore[attr-defined]
    assert len(encoded) <= 240 and decode_response(encoded) == message


@pytest.mark.parametrize(
    "raw",
    [b"Z63.43\x1c00", b"Z63.12\x1c0", b"Z64.05\x1c" + b"00" * 8 + b"\x1c1\x1c504\x1c030\x1c0412",
     b"Z64.03\x1c00\x1c1\x1c504\x1c030\x1c0412", b"Z66.4"],
)
def test_malformed_offline_pin_requests_are_refused(raw: bytes) -> None:
    """A bad part number, odd hex, exponent 5 or a short challenge is a ValueError."""
    with pytest.raises(ValueError):
        decode_request(raw)


async def test_in_process_pad_refuses_without_a_complete_key() -> None:
    """Z64 before every Z63 part arrived is a bad request, not a block under half a key."""
    device = PinPadDevice.from_bdk(DEFAULT_TDES_BDK, DEFAULT_TDES_KSN, pin="1234")
    device.icc_key_part(IccKeyPartRequest(1, 2, b"\xc1" * 112))
    answer = device.encipher_offline_pin(OfflinePinRequest(b"\x03", bytes(8), 1, 504, 30))
    assert answer.result is PinResult.BAD_REQUEST


async def test_cancel_on_the_in_process_pad_raises() -> None:
    """The in-process pad honours the cancel fault for offline PIN too."""
    with pytest.raises(PinEntryCancelledError):
        await _pad(faults="cancel=1").encipher_pin_for_card(b"\xc1" * 128, b"\x03", bytes(8),
                                                           100, 504)
