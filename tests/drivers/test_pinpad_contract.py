"""The PinPad rules, checked on the in-package fake and on the serial driver over a real pty.

Each test runs against :class:`drivers.pinpad.FakePinPad` and against
:class:`drivers.pinpad.SerialPinPad` talking to the PIN pad simulator on ``os.openpty``
(``tests/fixtures/pinpad.py``, marker ``hardware`` as the other pty tests). The fake does no cryptography: it is scripted with the
block the simulated device enciphers for the same PAN, so one check (the acquirer's
:func:`simulators.pinpad.host.recover_pin` with the BDK) holds for both.

The PinPad protocol has no single-use context (a pad serves entry after entry), so the
contract pins none; what it pins is that ``cancel()`` aborts the entry in progress and is
a no-op on an idle pad, and that cancel and timeout end in the same error leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from drivers.base import EncryptedPin, PinPad
from drivers.errors import PinEntryCancelledError, PinEntryTimeoutError
from drivers.pinpad import FakePinPad
from drivers.pinpad.fake import CARDHOLDER_WAITS
from drivers.pinpad.messages import PinEntryRequest
from simulators.pinpad.device import DEFAULT_TDES_BDK, DEFAULT_TDES_KSN, PinPadDevice
from simulators.pinpad.faults import parse_faults
from simulators.pinpad.host import recover_pin
from tests.fixtures.pinpad import TEST_PAN, TEST_PIN, PadFactory, SimFactory

AMOUNT, CURRENCY = 2500, 504


@dataclass
class Harness:
    """A PIN pad and the hands that script its cardholder and read its screen."""

    pad: PinPad
    types_pin: Callable[[], None]
    walks_away: Callable[[], None]
    screen: Callable[[], str]


@pytest.fixture(params=["fake", pytest.param("serial", marks=pytest.mark.hardware)])
async def harness(
    request: pytest.FixtureRequest, pinpad_sim: SimFactory, open_pinpad: PadFactory
) -> Harness:
    if request.param == "fake":
        device = PinPadDevice.from_bdk(DEFAULT_TDES_BDK, DEFAULT_TDES_KSN, pin=TEST_PIN)
        fake = FakePinPad()

        def fake_types_pin() -> None:
            answer = device.encipher_pin(PinEntryRequest(TEST_PAN, AMOUNT, CURRENCY, 30))
            assert answer.pin_format is not None
            fake.outcomes.append(EncryptedPin(answer.ksn, answer.pin_block, answer.pin_format))

        return Harness(fake, fake_types_pin, lambda: fake.outcomes.append(CARDHOLDER_WAITS),
                       lambda: fake.displayed[-1] if fake.displayed else "")
    sim = await pinpad_sim(scheme="tdes")
    pad = await open_pinpad(sim)

    def serial_walks_away() -> None:
        sim.faults = parse_faults("timeout=1")

    return Harness(pad, lambda: None, serial_walks_away, lambda: sim.device.display_text)


def test_implements_the_protocol(harness: Harness) -> None:
    """Both pads satisfy drivers.base.PinPad."""
    assert isinstance(harness.pad, PinPad)


async def test_get_pin_gives_a_block_the_acquirer_verifies(harness: Harness) -> None:
    """get_pin returns an EncryptedPin (format 0, 10-byte KSN) holding the cardholder's PIN,
    and successive entries use successive KSNs."""
    harness.types_pin()
    harness.types_pin()
    first = await harness.pad.get_pin(TEST_PAN, AMOUNT, CURRENCY, timeout_s=5)
    second = await harness.pad.get_pin(TEST_PAN, AMOUNT, CURRENCY, timeout_s=5)
    for pin in (first, second):
        assert isinstance(pin, EncryptedPin) and (pin.format, len(pin.ksn)) == (0, 10)
        assert recover_pin(DEFAULT_TDES_BDK, pin.ksn, pin.pin_block, TEST_PAN, pin.format) == TEST_PIN
    assert second.ksn != first.ksn


async def test_cancel_aborts_the_entry_in_progress(harness: Harness) -> None:
    """cancel() during an entry ends that get_pin with PinEntryCancelledError."""
    harness.walks_away()
    entry = asyncio.create_task(harness.pad.get_pin(TEST_PAN, AMOUNT, CURRENCY, timeout_s=30))
    await asyncio.sleep(0)  # the entry starts: it has its cancel hook before its first await
    await harness.pad.cancel()
    with pytest.raises(PinEntryCancelledError):
        await entry


async def test_cancel_on_an_idle_pad_leaves_the_next_entry_alone(harness: Harness) -> None:
    """cancel() with no entry running is a no-op: the next entry gives its PIN."""
    await harness.pad.cancel()
    harness.types_pin()
    pin = await harness.pad.get_pin(TEST_PAN, AMOUNT, CURRENCY, timeout_s=5)
    assert recover_pin(DEFAULT_TDES_BDK, pin.ksn, pin.pin_block, TEST_PAN, pin.format) == TEST_PIN


async def test_nobody_typing_ends_in_pin_entry_timeout(harness: Harness) -> None:
    """An entry nobody completes ends with PinEntryTimeoutError (the pad's 1 s minimum)."""
    harness.walks_away()
    with pytest.raises(PinEntryTimeoutError):
        await harness.pad.get_pin(TEST_PAN, AMOUNT, CURRENCY, timeout_s=1)


async def test_display_shows_text_and_refuses_what_the_pad_cannot(harness: Harness) -> None:
    """display() puts the text on the pad; over 32 characters or non-ASCII is a ValueError."""
    await harness.pad.display("INSERT CARD")
    assert harness.screen() == "INSERT CARD"
    for bad in ("X" * 33, "PAYÉ"):
        with pytest.raises(ValueError, match="32 printable ASCII"):
            await harness.pad.display(bad)
    assert harness.screen() == "INSERT CARD"


async def test_ping_reports_model_and_key_scheme(harness: Harness) -> None:
    """ping() answers with a dict naming the model and the key scheme."""
    status = await harness.pad.ping()
    assert isinstance(status.get("model"), str) and status["model"]
    assert isinstance(status.get("scheme"), str) and status["scheme"]
