"""The serial driver against the PIN pad simulator over a real pseudo-terminal.

pyserial opens the pty slave exactly as it would open ``/dev/ttyUSB0``; the simulator
serves the master side with the faults each test asks for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
import structlog
from psec.pinblock import encode_pinblock_iso_0

from drivers.errors import (
    PinEntryCancelledError,
    PinEntryTimeoutError,
    PinPadDeviceError,
    PinPadDisconnectedError,
    PinPadError,
    PinPadFrameError,
    PinPadNoAnswerError,
)
from simulators.pinpad.device import DEFAULT_TDES_BDK, DEFAULT_TDES_KSN, PinPadDevice
from simulators.pinpad.dukpt import tdes_initial_key
from simulators.pinpad.host import recover_pin, verify_pin
from simulators.pinpad.server import PinPadSimulator
from tests.fixtures.pinpad import KEYS, TEST_ACK_TIMEOUT, TEST_PAN, TEST_PIN, PadFactory, SimFactory

pytestmark = pytest.mark.hardware


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until true; fail (rather than hang) after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


MAD = 504


@pytest.mark.parametrize(
    ("scheme", "faults",                 "fmt", "frames", "answers", "noisy"),
    [
        ("tdes",   "",                       0,     1,        1,         False),
        ("aes",    "",                       4,     1,        1,         False),
        ("tdes",   "nak=1",                  0,     2,        1,         False),
        ("aes",    "nak=2",                  4,     3,        1,         False),
        ("tdes",   "noise",                  0,     1,        1,         True),
        ("aes",    "noise,bad-lrc=1",        4,     1,        2,         True),
        ("tdes",   "bad-lrc=2",              0,     1,        3,         False),
        ("tdes",   "mute=2",                 0,     3,        1,         False),
        ("aes",    "slow=0.1",               4,     1,        1,         False),
    ],
)  # fmt: skip
async def test_pin_entry_succeeds_and_host_recovers_pin(
    pinpad_sim: SimFactory,
    open_pinpad: PadFactory,
    scheme: str,
    faults: str,
    fmt: int,
    frames: int,
    answers: int,
    noisy: bool,
) -> None:
    """Through NAKs, noise, bad LRCs, lost packets and slowness the PIN block arrives intact."""
    sim = await pinpad_sim(scheme, faults)
    pad = await open_pinpad(sim)
    encrypted = await pad.get_pin(TEST_PAN, 1200, MAD, timeout_s=2)
    assert encrypted.format == fmt
    bdk, _ = KEYS[scheme]
    verify_pin(bdk, encrypted.ksn, encrypted.pin_block, TEST_PAN, TEST_PIN, encrypted.format)
    assert sim.received == [b"Z62"]
    assert (sim.frames_seen, sim.answers_sent) == (frames, answers)
    assert (pad.noise_bytes > 0) is noisy


async def test_nak_makes_the_driver_retransmit(
    pinpad_sim: SimFactory, open_pinpad: PadFactory
) -> None:
    """After a NAK the driver sends the same packet again; the pad acts on it once."""
    sim = await pinpad_sim("tdes", "nak=1")
    pad = await open_pinpad(sim)
    await pad.get_pin(TEST_PAN, 100, MAD, timeout_s=2)
    assert sim.frames_seen == 2
    assert sim.received == [b"Z62"]


async def test_no_answer_after_three_tries(pinpad_sim: SimFactory, open_pinpad: PadFactory) -> None:
    """A pad that never answers: three sends, then PinPadNoAnswerError with the port."""
    sim = await pinpad_sim("tdes", "silent")
    pad = await open_pinpad(sim)
    with pytest.raises(PinPadNoAnswerError) as caught:
        await pad.get_pin(TEST_PAN, 100, MAD, timeout_s=2)
    assert sim.frames_seen == 3
    assert caught.value.fields == {"port": sim.slave_path, "tries": 3, "command": "Z62"}
    assert sim.slave_path in str(caught.value)


async def test_persistently_bad_lrc_is_a_frame_error(
    pinpad_sim: SimFactory, open_pinpad: PadFactory
) -> None:
    """Three corrupt answers in a row (each NAKed) end in PinPadFrameError."""
    sim = await pinpad_sim("tdes", "bad-lrc=3")
    pad = await open_pinpad(sim)
    with pytest.raises(PinPadFrameError):
        await pad.get_pin(TEST_PAN, 100, MAD, timeout_s=2)


async def test_cardholder_cancel(pinpad_sim: SimFactory, open_pinpad: PadFactory) -> None:
    """CANCEL on the keypad ends get_pin with PinEntryCancelledError; the pad stays usable."""
    sim = await pinpad_sim("aes", "cancel")
    pad = await open_pinpad(sim)
    with pytest.raises(PinEntryCancelledError) as caught:
        await pad.get_pin(TEST_PAN, 100, MAD, timeout_s=2)
    assert caught.value.port == sim.slave_path
    assert (await pad.get_pin(TEST_PAN, 100, MAD, timeout_s=2)).format == 4


async def test_terminal_cancel(pinpad_sim: SimFactory, open_pinpad: PadFactory) -> None:
    """cancel() during an entry sends 72; the entry ends with PinEntryCancelledError."""
    sim = await pinpad_sim("tdes", keypress_delay=5.0)
    pad = await open_pinpad(sim)
    entry = asyncio.create_task(pad.get_pin(TEST_PAN, 100, MAD, timeout_s=30))
    await _until(lambda: sim.received == [b"Z62"])
    await pad.cancel()
    with pytest.raises(PinEntryCancelledError):
        await entry
    assert sim.received == [b"Z62", b"72"]


async def test_cancelling_the_task_aborts_the_entry(
    pinpad_sim: SimFactory, open_pinpad: PadFactory
) -> None:
    """Cancelling the caller's task tells the pad to stop waiting for the PIN."""
    sim = await pinpad_sim("tdes", keypress_delay=5.0)
    pad = await open_pinpad(sim)
    entry = asyncio.create_task(pad.get_pin(TEST_PAN, 100, MAD, timeout_s=30))
    await _until(lambda: sim.received == [b"Z62"])
    entry.cancel()
    with pytest.raises(asyncio.CancelledError):
        await entry
    await _until(lambda: b"72" in sim.received)


async def test_pin_entry_timeout(pinpad_sim: SimFactory, open_pinpad: PadFactory) -> None:
    """A cardholder who types nothing: the pad times out and get_pin raises PinEntryTimeoutError."""
    sim = await pinpad_sim("tdes", "timeout")
    pad = await open_pinpad(sim)
    with pytest.raises(PinEntryTimeoutError):
        await pad.get_pin(TEST_PAN, 100, MAD, timeout_s=1)


async def test_hang_up(pinpad_sim: SimFactory, open_pinpad: PadFactory) -> None:
    """The line hung up during PIN entry: PinPadDisconnectedError, and again on the next call."""
    sim = await pinpad_sim("tdes", "hangup")
    pad = await open_pinpad(sim)
    with pytest.raises(PinPadDisconnectedError) as caught:
        await pad.get_pin(TEST_PAN, 100, MAD, timeout_s=2)
    assert caught.value.port == sim.slave_path
    with pytest.raises(PinPadDisconnectedError):
        await pad.ping()


async def test_unplugged_mid_entry(pinpad_sim: SimFactory, open_pinpad: PadFactory) -> None:
    """The device vanishing while the cardholder types is PinPadDisconnectedError."""
    sim = await pinpad_sim("tdes", keypress_delay=5.0)
    pad = await open_pinpad(sim)
    entry = asyncio.create_task(pad.get_pin(TEST_PAN, 100, MAD, timeout_s=30))
    await _until(lambda: sim.received == [b"Z62"])
    await sim.stop()
    with pytest.raises(PinPadDisconnectedError):
        await entry


async def test_ksn_advances_on_every_pin(pinpad_sim: SimFactory, open_pinpad: PadFactory) -> None:
    """Each PIN uses the next KSN (hence a fresh key); the host verifies every one."""
    sim = await pinpad_sim("tdes")
    pad = await open_pinpad(sim)
    ksns = []
    for _ in range(4):
        encrypted = await pad.get_pin(TEST_PAN, 100, MAD, timeout_s=2)
        assert (
            recover_pin(DEFAULT_TDES_BDK, encrypted.ksn, encrypted.pin_block, TEST_PAN) == TEST_PIN
        )
        ksns.append(encrypted.ksn.hex().upper())
    assert ksns == [f"FFFF9876543210E0000{n}" for n in (1, 2, 3, 4)]
    status = await pad.ping()
    assert status["ksn"] == "FFFF9876543210E00004"


async def test_display_status_and_key_load(open_pinpad: PadFactory) -> None:
    """A pad with no key refuses PIN entry; after a test key load it works (Z2, 11, 90)."""
    async with PinPadSimulator(
        PinPadDevice(None, pin=TEST_PIN), ack_timeout=TEST_ACK_TIMEOUT
    ) as sim:
        pad = await open_pinpad(sim)
        await pad.display("INSERT CARD")
        assert sim.device.display_text == "INSERT CARD"
        assert (await pad.ping())["scheme"] == "none"
        with pytest.raises(PinPadDeviceError):
            await pad.get_pin(TEST_PAN, 100, MAD, timeout_s=2)
        ik = tdes_initial_key(DEFAULT_TDES_BDK, DEFAULT_TDES_KSN)
        await pad.load_test_key(ik, DEFAULT_TDES_KSN)
        encrypted = await pad.get_pin(TEST_PAN, 100, MAD, timeout_s=2)
        verify_pin(DEFAULT_TDES_BDK, encrypted.ksn, encrypted.pin_block, TEST_PAN, TEST_PIN)


async def test_key_load_refused(open_pinpad: PadFactory) -> None:
    """A pad that does not take test keys answers 91.1: PinPadDeviceError."""
    device = PinPadDevice(None, allow_key_load=False)
    async with PinPadSimulator(device, ack_timeout=TEST_ACK_TIMEOUT) as sim:
        pad = await open_pinpad(sim)
        with pytest.raises(PinPadDeviceError):
            await pad.load_test_key(bytes(16), DEFAULT_TDES_KSN)


async def test_no_pin_or_pan_in_logs_or_errors(
    pinpad_sim: SimFactory, open_pinpad: PadFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Terminal side: neither the PIN nor the PAN reaches a log record or an error."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with structlog.testing.capture_logs() as structured:
        for faults in ("nak=1,noise", "cancel", "bad-lrc=3", "silent", "hangup"):
            sim = await pinpad_sim("aes", faults)
            pad = await open_pinpad(sim)
            try:
                encrypted = await pad.get_pin(TEST_PAN, 1200, MAD, timeout_s=2)
                texts.append(repr(encrypted))
            except PinPadError as exc:
                texts += [str(exc), repr(exc), repr(exc.fields), repr(exc.__cause__)]
    driver_records = [r for r in caplog.records if r.name.startswith("drivers")]
    assert driver_records, "the driver logs its exchanges"
    texts += [r.getMessage() + repr(r.__dict__) for r in driver_records]
    texts += [repr(entry) for entry in structured]
    blob = "\n".join(texts)
    assert TEST_PIN not in blob
    assert TEST_PAN not in blob


async def test_pad_never_sends_a_clear_pin(
    pinpad_sim: SimFactory, open_pinpad: PadFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every byte the pad writes is free of the PIN, as digits or as a clear PIN block."""
    sim = await pinpad_sim("tdes", "noise,bad-lrc=1")
    written: list[bytes] = []
    original = sim._write
    monkeypatch.setattr(sim, "_write", lambda data: (written.append(data), original(data)))
    pad = await open_pinpad(sim)
    for _ in range(3):
        await pad.get_pin(TEST_PAN, 100, MAD, timeout_s=2)
    wire = b"".join(written)
    assert wire.count(b"71.00") == 4  # three answers, one sent twice
    clear_block = encode_pinblock_iso_0(TEST_PIN, TEST_PAN)
    for secret in (TEST_PIN.encode(), clear_block, clear_block.hex().upper().encode()):
        assert secret not in wire


async def test_cancel_when_idle_and_reopen(pinpad_sim: SimFactory, open_pinpad: PadFactory) -> None:
    """cancel() with no entry running is a plain 72 exchange; a closed pad reopens cleanly."""
    sim = await pinpad_sim("tdes")
    pad = await open_pinpad(sim)
    await pad.cancel()
    assert sim.received == [b"72"]
    await pad.close()
    await pad.open()
    assert (await pad.ping())["scheme"] == "tdes"
