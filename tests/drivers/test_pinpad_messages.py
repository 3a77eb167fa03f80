"""PIN pad application messages (drivers/PROTOCOL.md §3): layouts, round trips, refusals."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from drivers.pinpad.messages import (
    CancelRequest,
    DisplayRequest,
    LoadKeyRequest,
    LoadKeyResponse,
    PinEntryRequest,
    PinEntryResponse,
    PinResult,
    StatusRequest,
    StatusResponse,
    decode_request,
    decode_response,
)

PAN = "4761739001010119"
FS = "\x1c"
Z62 = f"Z62.{PAN}{FS}"
KEY_HEX = "000102030405060708090A0B0C0D0E0F"
KSN1, BLOCK1 = "FFFF9876543210E00001", "1B9C1845EB993A7A"


@pytest.mark.parametrize(
    ("request_", "wire"),
    [
        (DisplayRequest("INSERT CARD"),             b"Z2INSERT CARD"),
        (PinEntryRequest(PAN, 1200, 504, 30),       f"{Z62}1200{FS}504{FS}030{FS}0412".encode()),
        (PinEntryRequest(PAN, 0, 978, 5, 6, 6),     f"{Z62}0{FS}978{FS}005{FS}0606".encode()),
        (CancelRequest(),                           b"72"),
        (StatusRequest(),                           b"11"),
        (LoadKeyRequest(bytes(range(16)), bytes(10)),
                                                    f"90{KEY_HEX}{FS}{'0' * 20}".encode()),
    ],
)  # fmt: skip
def test_request_layouts(request_: object, wire: bytes) -> None:
    """Each request encodes to the documented bytes and decodes back to itself."""
    assert request_.encode() == wire  # type: ignore[attr-defined]
    assert decode_request(wire) == request_


@pytest.mark.parametrize(
    ("response", "wire"),
    [
        (PinEntryResponse(PinResult.OK, 0, bytes.fromhex(KSN1), bytes.fromhex(BLOCK1)),
                                                     f"71.00{FS}{KSN1}{FS}{BLOCK1}".encode()),
        (PinEntryResponse(PinResult.CANCELLED),      b"71.1"),
        (PinEntryResponse(PinResult.TIMEOUT),        b"71.2"),
        (PinEntryResponse(PinResult.NO_KEY),         b"71.3"),
        (StatusResponse({"model": "X", "scheme": "aes"}), b"12.model=X\x1cscheme=aes"),
        (LoadKeyResponse(ok=True),                   b"91.0"),
        (LoadKeyResponse(ok=False),                  b"91.1"),
    ],
)  # fmt: skip
def test_response_layouts(response: object, wire: bytes) -> None:
    """Each answer encodes to the documented bytes and decodes back to itself."""
    assert response.encode() == wire  # type: ignore[attr-defined]
    assert decode_response(wire) == response


@given(
    pan=st.text("0123456789", min_size=13, max_size=19),
    amount=st.integers(0, 999_999_999_999),
    currency=st.integers(0, 999),
    timeout=st.integers(1, 300),
    lengths=st.tuples(st.integers(4, 12), st.integers(4, 12)).map(sorted),
)
def test_pin_entry_request_round_trip(
    pan: str, amount: int, currency: int, timeout: int, lengths: list[int]
) -> None:
    """Every valid Z62 request survives encode/decode."""
    request = PinEntryRequest(pan, amount, currency, timeout, lengths[0], lengths[1])
    assert decode_request(request.encode()) == request


@given(
    aes=st.booleans(),
    ksn=st.binary(min_size=12, max_size=12),
    block=st.binary(min_size=16, max_size=16),
)
def test_pin_entry_response_round_trip(aes: bool, ksn: bytes, block: bytes) -> None:
    """Every valid 71.0 answer (format 0 or 4) survives encode/decode."""
    response = (
        PinEntryResponse(PinResult.OK, 4, ksn, block)
        if aes
        else PinEntryResponse(PinResult.OK, 0, ksn[:10], block[:8])
    )
    assert decode_response(response.encode()) == response


@given(st.binary(max_size=80))
# Random bytes rarely decode: valid messages make sure the re-encoding check runs.
@example(b"Z62.4761739001010119\x1c1\x1c504\x1c030\x1c0412")
@example(b"71.1")
@example(b"12.model=x")
def test_decoders_only_raise_value_error(data: bytes) -> None:
    """Garbage raises ValueError only; what does decode is a message that re-encodes to itself."""
    for decode in (decode_request, decode_response):
        try:
            message = decode(data)
        except ValueError:
            continue
        assert decode(message.encode()) == message


@pytest.mark.parametrize(
    "wire",
    [
        b"Z62.123\x1c1\x1c504\x1c030\x1c0412",                   # PAN too short
        b"Z62.4761739001010119\x1c1\x1c504\x1c000\x1c0412",      # zero timeout
        b"Z62.4761739001010119\x1c1\x1c504\x1c030\x1c0804",      # min > max
        b"Z62.4761739001010119\x1c-1\x1c504\x1c030\x1c0412",     # negative amount
        b"Z2" + b"X" * 33,                                       # display too long
        b"90ZZ\x1c00",                                           # key not hex
        b"99",                                                   # unknown code
    ],
)  # fmt: skip
def test_malformed_requests_refused(wire: bytes) -> None:
    """Requests outside the documented layout are refused with ValueError."""
    with pytest.raises(ValueError):
        decode_request(wire)


def test_decode_errors_do_not_echo_the_pan() -> None:
    """A refused Z62 never quotes the message (it holds the PAN) in its error."""
    with pytest.raises(ValueError) as caught:
        decode_request(b"Z62." + PAN.encode() + b"\x1cXX\x1c504\x1c030\x1c0412")
    assert PAN not in str(caught.value)


def test_pin_entry_request_repr_masks_pan() -> None:
    """The PIN entry request shows first six and last four digits only."""
    assert PAN not in repr(PinEntryRequest(PAN, 1, 504, 30))
