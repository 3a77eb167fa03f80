"""T=0 handling (61xx → GET RESPONSE, 6Cxx → resend with Le) against the scripted reader."""

from __future__ import annotations

import pytest

from drivers.apdu import MAX_T0_ROUNDS, apdu_case, with_le
from drivers.reader_errors import CardProtocolError
from drivers.scripted import ScriptedReader

SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
READ_RECORD = bytes.fromhex("00B2010C00")


async def _session(reader: ScriptedReader):
    return await reader.connect(await reader.wait_for_card())


@pytest.mark.parametrize(
    ("apdu",                         "case"),
    [
        (bytes.fromhex("00840000"),   1),
        (bytes.fromhex("0084000008"), 2),
        (bytes.fromhex("8082000002AABB"), 3),
        (bytes.fromhex("8082000002AABB00"), 4),
    ],
)
def test_apdu_case(apdu: bytes, case: int) -> None:
    """Short APDUs are classified into ISO 7816-3 cases 1–4."""
    assert apdu_case(apdu) == case


@pytest.mark.parametrize(
    "apdu",
    [b"", b"\x00\xa4\x04", bytes.fromhex("00A4040002AA"), bytes.fromhex("00A4040000AABB")],
)
def test_malformed_apdu_is_a_value_error(apdu: bytes) -> None:
    """Too short, Lc/length mismatch and extended APDUs are caller mistakes."""
    with pytest.raises(ValueError):
        apdu_case(apdu)


@pytest.mark.parametrize(
    ("apdu",                            "le", "expected"),
    [
        (bytes.fromhex("00B2010C00"),      0x1A, bytes.fromhex("00B2010C1A")),
        (bytes.fromhex("80CA9F17"),        0x04, bytes.fromhex("80CA9F1704")),
        (bytes.fromhex("8088000002AABB"),  0x80, bytes.fromhex("8088000002AABB80")),
        (bytes.fromhex("8088000002AABB00"), 0x80, bytes.fromhex("8088000002AABB80")),
    ],
)
def test_with_le(apdu: bytes, le: int, expected: bytes) -> None:
    """Le is replaced when present and appended when absent."""
    assert with_le(apdu, le) == expected


async def test_61xx_is_followed_by_get_response() -> None:
    """A 61xx answer makes the session fetch the data with GET RESPONSE and return it whole."""
    reader = ScriptedReader([(b"", 0x61, 0x04), (b"\x6f\x02\x84\x00", 0x90, 0x00)])
    session = await _session(reader)
    response = await session.transmit(SELECT_PPSE)
    assert (response.data, response.sw) == (b"\x6f\x02\x84\x00", 0x9000)
    assert reader.sent == [SELECT_PPSE, bytes.fromhex("00C0000004")]


async def test_chained_61xx_accumulates_data() -> None:
    """Several 61xx in a row concatenate every chunk of data in order."""
    reader = ScriptedReader([(b"", 0x61, 0x02), (b"AB", 0x61, 0x01), (b"C", 0x90, 0x00)])
    response = await (await _session(reader)).transmit(SELECT_PPSE)
    assert response.data == b"ABC"
    assert reader.sent[1:] == [bytes.fromhex("00C0000002"), bytes.fromhex("00C0000001")]


async def test_6cxx_resends_with_the_right_le() -> None:
    """6Cxx makes the session send the same command again with Le = xx."""
    reader = ScriptedReader([(b"", 0x6C, 0x1A), (b"r" * 0x1A, 0x90, 0x00)])
    response = await (await _session(reader)).transmit(READ_RECORD)
    assert response.data == b"r" * 0x1A
    assert reader.sent == [READ_RECORD, bytes.fromhex("00B2010C1A")]


async def test_6cxx_on_get_response_then_data() -> None:
    """6Cxx answering a GET RESPONSE corrects the GET RESPONSE's Le."""
    reader = ScriptedReader([(b"", 0x61, 0x00), (b"", 0x6C, 0x03), (b"xyz", 0x90, 0x00)])
    response = await (await _session(reader)).transmit(SELECT_PPSE)
    assert response.data == b"xyz"
    assert reader.sent[1:] == [bytes.fromhex("00C0000000"), bytes.fromhex("00C0000003")]


async def test_error_status_is_returned_not_raised() -> None:
    """Ordinary error status words (6A82, 6283) reach the caller as responses."""
    reader = ScriptedReader([(b"", 0x6A, 0x82)])
    response = await (await _session(reader)).transmit(SELECT_PPSE)
    assert (response.data, response.sw, response.ok) == (b"", 0x6A82, False)


async def test_endless_61xx_is_a_protocol_error() -> None:
    """A card that never stops asking for GET RESPONSE is refused after a bounded number."""
    reader = ScriptedReader([(b"x", 0x61, 0x01)] * (MAX_T0_ROUNDS + 5))
    with pytest.raises(CardProtocolError):
        await (await _session(reader)).transmit(SELECT_PPSE)
    assert len(reader.sent) == MAX_T0_ROUNDS


async def test_closed_session_refuses_to_transmit() -> None:
    """A card session is single use: after close() it refuses commands."""
    reader = ScriptedReader([(b"", 0x90, 0x00)])
    session = await _session(reader)
    await session.close()
    await session.close()
    with pytest.raises(RuntimeError):
        await session.transmit(SELECT_PPSE)
    assert reader.closed_sessions == 1


async def test_transmit_checks_the_apdu() -> None:
    """A non-bytes or malformed APDU is refused before anything is sent."""
    reader = ScriptedReader([(b"", 0x90, 0x00)])
    session = await _session(reader)
    with pytest.raises(TypeError):
        await session.transmit("00A40400")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await session.transmit(b"\x00\xa4")
    assert reader.sent == []


async def test_response_repr_shows_no_card_data() -> None:
    """A READ RECORD answer's repr (log, traceback) gives its length and SW, not PAN or track 2."""
    pan, track2 = "4761739001010119", "4761739001010119D25122011234567890"
    record = bytes.fromhex("701D" + "5A08" + pan + "5711" + track2)
    reader = ScriptedReader([(record, 0x90, 0x00)])
    response = await (await _session(reader)).transmit(READ_RECORD)
    assert response.data == record
    for text in (repr(response), str(response), f"{response!r}", repr([response])):
        assert "ResponseApdu(<31 bytes>, sw=9000)" in text
        for clear in (pan, pan[6:12], record.hex(), record.hex().upper(), repr(record)[2:20]):
            assert clear not in text
