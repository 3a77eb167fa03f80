"""The kernel's card channel: driver errors mapped, T=0 status words followed."""

from __future__ import annotations

import pytest

from drivers import reader_errors
from drivers.base import ResponseApdu
from drivers.errors import ReaderError
from terminal.emv import apdu
from terminal.emv.apdu import CardChannel
from terminal.emv.errors import CardRemovedMidTransactionError, ReaderFailureError

LEAVES = [getattr(reader_errors, name) for name in reader_errors.__all__]


class FailingSession:
    reader = "r"
    atr = b""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def transmit(self, command: bytes) -> ResponseApdu:
        raise self.error

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda c: c.__name__)
async def test_every_reader_error_is_mapped(leaf: type[ReaderError]) -> None:
    """Every driver reader error becomes CardRemovedMidTransactionError (card gone) or ReaderFailureError, chained."""
    channel = CardChannel(FailingSession(leaf("boom", reader="r")))  # type: ignore[arg-type]
    expected = CardRemovedMidTransactionError if leaf.__name__ in ("CardRemovedError", "NoCardError") else (
        ReaderFailureError)
    with pytest.raises(expected) as info:
        await channel.transmit(apdu.get_challenge())
    assert isinstance(info.value.__cause__, leaf)


class T0Session:
    reader = "r"
    atr = b""

    def __init__(self, answers: list[ResponseApdu]) -> None:
        self.answers = answers
        self.sent: list[bytes] = []

    async def transmit(self, command: bytes) -> ResponseApdu:
        self.sent.append(command)
        return self.answers.pop(0)

    async def close(self) -> None:
        return None


async def test_61xx_chains_get_response() -> None:
    """61xx → GET RESPONSE with Le = xx, data concatenated (Book 1 §9.3.1.3)."""
    session = T0Session([ResponseApdu(b"", 0x61, 0x04), ResponseApdu(b"\x01\x02", 0x61, 0x02),
                         ResponseApdu(b"\x03\x04", 0x90, 0x00)])
    response = await CardChannel(session).transmit(apdu.read_record(1, 1))  # type: ignore[arg-type]
    assert response == ResponseApdu(b"\x01\x02\x03\x04", 0x90, 0x00)
    assert session.sent[1:] == [bytes.fromhex("00C0000004"), bytes.fromhex("00C0000002")]


async def test_6cxx_resends_with_le() -> None:
    """6Cxx → the same command again with Le = xx."""
    session = T0Session([ResponseApdu(b"", 0x6C, 0x1A), ResponseApdu(b"\x70", 0x90, 0x00)])
    await CardChannel(session).transmit(apdu.read_record(2, 1))  # type: ignore[arg-type]
    assert session.sent == [bytes.fromhex("00B2011400"), bytes.fromhex("00B201141A")]


async def test_endless_61xx_is_a_reader_failure() -> None:
    """A card that never stops answering 61xx is not usable."""
    session = T0Session([ResponseApdu(b"", 0x61, 0x01)] * 40)
    with pytest.raises(ReaderFailureError):
        await CardChannel(session).transmit(apdu.get_challenge())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("built",                                   "expected"),
    [
        (apdu.select(b"1PAY.SYS.DDF01"),          "00A404000E315041592E5359532E444446303100"),
        (apdu.select(b"\xa0\x00\x00\x00\x03", next_occurrence=True), "00A4040205A00000000300"),
        (apdu.read_record(1, 2),                  "00B2020C00"),
        (apdu.get_processing_options(b""),        "80A8000002830000"),
        (apdu.generate_ac(0x90, b"\x01"),         "80AE90000101" + "00"),
        (apdu.get_data(0x9F36),                   "80CA9F3600"),
        (apdu.external_authenticate(bytes(10)),   "008200000A" + "00" * 10),
    ],
)
def test_command_apdus(built: bytes, expected: str) -> None:
    """Command APDUs are coded as EMV 4.4 Book 3 §6.5 shows them."""
    assert built.hex().upper() == expected
