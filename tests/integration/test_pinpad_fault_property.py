"""Property: over a real pty, the outcome of a PIN entry follows from the faults alone."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.errors import PinPadFrameError, PinPadNoAnswerError
from drivers.pinpad import SerialPinPad
from simulators.pinpad.device import PinPadDevice
from simulators.pinpad.faults import Faults
from simulators.pinpad.host import verify_pin
from simulators.pinpad.server import PinPadSimulator
from tests.fixtures.pinpad import KEYS, TEST_ACK_TIMEOUT, TEST_PAN, TEST_PIN

pytestmark = [pytest.mark.hardware, pytest.mark.slow]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheme=st.sampled_from(["tdes", "aes"]),
    nak=st.integers(0, 3),
    mute=st.integers(0, 2),
    bad_lrc=st.integers(0, 3),
    noise=st.booleans(),
)
def test_outcome_follows_from_faults(
    scheme: str, nak: int, mute: int, bad_lrc: int, noise: bool
) -> None:
    """Fewer than three lost/NAKed sends and corrupt answers: the PIN gets through intact;
    three lost sends: PinPadNoAnswerError; three corrupt answers: PinPadFrameError."""

    async def run() -> None:
        bdk, ksn = KEYS[scheme]
        faults = Faults(nak=nak, mute=mute, bad_lrc=bad_lrc, noise=noise)
        device = PinPadDevice.from_bdk(bdk, ksn, pin=TEST_PIN)
        async with PinPadSimulator(
            device, faults, ack_timeout=TEST_ACK_TIMEOUT, keypress_delay=0
        ) as sim:
            async with SerialPinPad(
                sim.slave_path, ack_timeout=TEST_ACK_TIMEOUT, answer_grace=1.0
            ) as pad:
                if nak + mute >= 3:
                    with pytest.raises(PinPadNoAnswerError):
                        await pad.get_pin(TEST_PAN, 100, 504, timeout_s=2)
                elif bad_lrc >= 3:
                    with pytest.raises(PinPadFrameError):
                        await pad.get_pin(TEST_PAN, 100, 504, timeout_s=2)
                else:
                    encrypted = await pad.get_pin(TEST_PAN, 100, 504, timeout_s=2)
                    verify_pin(bdk, encrypted.ksn, encrypted.pin_block, TEST_PAN, TEST_PIN)

    asyncio.run(run())
