"""The ISO 8583 messages the connector builds: round trips, sub-formats, card-data rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import iso8583
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_sync.connectors import (
    Amount,
    AuthorisationRequest,
    CardInput,
    EntryMode,
    PspReference,
    RefundRequest,
)
from edge_sync.connectors.iso8583_messages import (
    HostContext,
    StanCounter,
    build_authorisation,
    build_completion,
    build_echo,
    build_refund,
    build_reversal,
    build_status,
    encode_icc,
    icc_tags,
    make_rrn,
    read_answer,
)
from edge_sync.connectors.iso8583_spec import (
    FORBIDDEN_ICC_TAGS,
    decode,
    decode_de48,
    decode_de90,
    encode,
    encode_de48,
    encode_de90,
    frame,
)
from terminal.emv.tags import SENSITIVE_TAGS


class _Envelope:
    def envelope_for(self, psp_public_key_pem: bytes, context: bytes) -> bytes:
        return b"\x01" + context


CTX = HostContext("cih", "504001", "ETK00001", "ETIKA0000000001", "ETIKA TEST SHOP")

amounts = st.builds(
    Amount,
    minor=st.integers(0, 999_999_999_999),
    currency=st.sampled_from(["MAD", "EUR", "USD"]),
    numeric=st.sampled_from([504, 978, 840]),
    exponent=st.just(2),
)
stans = st.integers(1, 999_999).map(lambda n: f"{n:06d}")
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31),
                       timezones=st.just(UTC))
icc = st.dictionaries(
    st.sampled_from([0x9F26, 0x9F27, 0x9F10, 0x9F37, 0x9F36, 0x95, 0x9A, 0x9C, 0x9F02,
                     0x5F2A, 0x82, 0x9F1A, 0x5F34]),
    st.binary(min_size=1, max_size=16), max_size=13,
)
pins = st.one_of(
    st.none(),
    st.tuples(st.binary(min_size=8, max_size=8), st.binary(min_size=10, max_size=10)),
    st.tuples(st.binary(min_size=16, max_size=16), st.binary(min_size=12, max_size=12)),
)


@st.composite
def authorisations(draw: st.DrawFn) -> AuthorisationRequest:
    pin = draw(pins)
    card = CardInput(
        encryptor=_Envelope(),
        entry_mode=draw(st.sampled_from(list(EntryMode))),
        emv_data=encode_icc(draw(icc)),
        pan_sequence=draw(st.one_of(st.none(), st.integers(0, 99).map(str))),
        pin_block=pin[0] if pin else None,
        ksn=pin[1] if pin else None,
    )
    return AuthorisationRequest(uuid.UUID(int=draw(st.integers(0, 2**128 - 1))),
                                draw(amounts), card, capture=draw(st.booleans()))


def _round_trip(fields: dict[str, str]) -> None:
    decoded = decode(encode(fields))
    decoded.pop("p", None)
    decoded.pop("1", None)
    assert decoded == fields


@given(authorisations(), stans, moments, st.booleans())
def test_authorisation_round_trips(request: AuthorisationRequest, stan: str, now: datetime,
                                   advice: bool) -> None:
    """0100/0200/0220 built from any request decode to the same fields, DE 48 to the key."""
    envelope = request.card.encryptor.envelope_for(b"", request.idempotency_key.encode())
    fields = build_authorisation(CTX, request, stan=stan, now=now, p2pe_envelope=envelope,
                                 advice=advice)
    _round_trip(fields)
    assert decode_de48(fields["48"]) == {"01": request.idempotency_key}
    assert fields["t"] == ("0220" if advice else "0200" if request.capture else "0100")
    assert "2" not in fields and "35" not in fields and "14" not in fields


@st.composite
def references(draw: st.DrawFn) -> PspReference:
    return PspReference(
        connector="cih", transaction_id=str(uuid.uuid4()),
        mti=draw(st.sampled_from(["0100", "0200"])), stan=draw(stans),
        transmitted_at=draw(moments).strftime("%m%d%H%M%S"),
        rrn=draw(st.one_of(st.none(), st.from_regex(r"[0-9]{12}", fullmatch=True))),
        approval_code=draw(st.one_of(st.none(), st.from_regex(r"[0-9A-Z]{6}", fullmatch=True))),
    )


@given(references(), amounts, stans, moments, st.booleans())
def test_follow_ups_round_trip(original: PspReference, amount: Amount, stan: str,
                               now: datetime, repeat: bool) -> None:
    """Reversals, completions, refunds and status enquiries round-trip and point at the
    original through DE 90."""
    messages = [
        build_reversal(CTX, original, amount, stan=stan, now=now, repeat=repeat),
        build_completion(CTX, original, amount, stan=stan, now=now, repeat=repeat),
        build_refund(CTX, RefundRequest(uuid.uuid4(), amount, original), stan=stan, now=now),
        build_status(CTX, original, stan=stan, now=now),
        build_echo(CTX, stan=stan, now=now),
    ]
    for fields in messages:
        _round_trip(fields)
    for fields in messages[:4]:
        mti, ostan, when, acquirer = decode_de90(fields["90"])
        assert (mti, ostan, when, acquirer) == (original.mti, original.stan,
                                                original.transmitted_at, "504001")
    assert messages[0]["t"] == ("0401" if repeat else "0400")
    if original.rrn:
        assert messages[0]["37"] == original.rrn


@given(st.dictionaries(st.from_regex(r"[0-9]{2}", fullmatch=True),
                       st.text(st.characters(min_codepoint=32, max_codepoint=126),
                               max_size=60)))
def test_de48_round_trips(elements: dict[str, str]) -> None:
    """DE 48 sub-elements decode to what was encoded."""
    assert decode_de48(encode_de48(elements)) == elements


@pytest.mark.parametrize(
    ("text",            "reason"),
    [
        ("01",              "header malformed"),
        ("0A003abc",        "header malformed"),
        ("01010abc",        "truncated"),
    ],
)
def test_de48_malformed(text: str, reason: str) -> None:
    """A malformed DE 48 raises ValueError saying where."""
    with pytest.raises(ValueError, match=reason):
        decode_de48(text)


def test_de90_layout() -> None:
    """DE 90 is MTI, STAN, DE 7, acquirer n11 and forwarder n11 (ISO 8583:1987)."""
    assert encode_de90("0200", "000123", "1122103000", "504001") == (
        "0200" "000123" "1122103000" "00000504001" "00000000000")


def test_card_data_tags_are_refused_in_de55() -> None:
    """A PAN or track 2 inside the ICC data is refused before anything is sent."""
    request = AuthorisationRequest(
        uuid.uuid4(), Amount(100, "MAD", 504, 2),
        CardInput(encryptor=_Envelope(), emv_data=bytes.fromhex("5A084761739001010010")))
    with pytest.raises(ValueError, match="P2PE"):
        build_authorisation(CTX, request, stan="000001", now=datetime.now(UTC),
                            p2pe_envelope=b"\x01x")


def test_card_data_tags_nested_in_a_template_are_refused() -> None:
    """A PAN inside a constructed template (70) is refused like one at the top level."""
    nested = bytes.fromhex("9F2608" + "01" * 8 + "700A" + "5A08" + "4761739001010010")
    assert icc_tags(nested) == ["9F26", "70"]
    assert icc_tags(nested, nested=True) == ["9F26", "70", "5A"]
    request = AuthorisationRequest(uuid.uuid4(), Amount(100, "MAD", 504, 2),
                                   CardInput(encryptor=_Envelope(), emv_data=nested))
    with pytest.raises(ValueError, match=r"\['5A'\].*P2PE") as caught:
        build_authorisation(CTX, request, stan="000001", now=datetime.now(UTC),
                            p2pe_envelope=b"\x01x")
    assert "4761739001010010" not in str(caught.value)


def test_encode_icc_drops_card_data_tags() -> None:
    """encode_icc keeps the cryptogram data and drops 5A, 57 and 5F24's neighbours."""
    data = encode_icc({0x9F26: b"\x01" * 8, 0x5A: b"\x47" * 8, 0x57: b"\x47" * 10,
                       0x9F36: b"\x00\x01"})
    assert icc_tags(data) == ["9F26", "9F36"]


def test_every_sensitive_kernel_tag_is_kept_out_of_icc_data() -> None:
    """Each tag the kernel calls sensitive (PAN, tracks, name, IBAN, PIN data) is refused."""
    assert {f"{tag:X}".zfill(2) for tag in SENSITIVE_TAGS} <= FORBIDDEN_ICC_TAGS
    data = encode_icc({0x9F26: b"\x01" * 8, **{tag: b"\x47" * 8 for tag in SENSITIVE_TAGS}})
    assert icc_tags(data) == ["9F26"]


@pytest.mark.parametrize(
    ("data",                 "message"),
    [
        ("9F",                   "truncated in the length"),
        ("9F2608AABB",           "truncated in the value"),
        ("9F2684FFFFFFFF",       "malformed length"),
    ],
)
def test_icc_walk_refuses_broken_tlv(data: str, message: str) -> None:
    """Broken ICC data is a ValueError naming the problem."""
    with pytest.raises(ValueError, match=message):
        icc_tags(bytes.fromhex(data))


def test_frame_prefix_and_limit() -> None:
    """Frames carry a 2-byte big-endian length; oversize messages are refused."""
    assert frame(b"abc") == b"\x00\x03abc"
    with pytest.raises(ValueError, match="65535"):
        frame(b"x" * 70_000)


def test_stan_counter_wraps_and_skips_zero() -> None:
    """STANs run 000001…999999 and wrap to 000001, never 000000."""
    counter = StanCounter(999_998)
    assert [counter.next_stan() for _ in range(3)] == ["999998", "999999", "000001"]


def test_rrn_layout() -> None:
    """The RRN is year digit, day of year, hour, then the STAN (12 characters)."""
    assert make_rrn(datetime(2026, 2, 1, 9, tzinfo=UTC), "000042") == "603209000042"


@pytest.mark.parametrize(
    ("fields",                                  "message"),
    [
        ({"t": "0110"},                             "response code"),
        ({"t": "0110", "39": "0"},                  "response code"),
        ({"t": "0110", "39": "00", "48": "01"},     "DE 48"),
    ],
)
def test_read_answer_refuses_broken_answers(fields: dict[str, str], message: str) -> None:
    """An answer without a usable DE 39, or with a broken DE 48, is a ValueError."""
    with pytest.raises(ValueError, match=message):
        read_answer(fields)


@pytest.mark.parametrize("de55", ["ZZ", "9", "91" * 300])
def test_read_answer_keeps_the_decision_of_a_broken_de55(de55: str) -> None:
    """An unreadable DE 55 flags the issuer data as malformed and keeps the host's approval
    (#17 item 7; EMV Book 3 §10.9: issuer authentication fails, the decision stands)."""
    parsed = read_answer({"t": "0110", "39": "00", "38": "A1B2C3", "55": de55})
    assert (parsed.code, parsed.approval_code) == ("00", "A1B2C3")
    assert parsed.emv_malformed and parsed.emv_data == b""


def test_pyiso8583_errors_are_mapped() -> None:
    """pyiso8583's EncodeError becomes a ValueError naming the field; DecodeError is a
    ValueError the connector turns into MalformedResponseError."""
    with pytest.raises(ValueError, match="field 41") as info:
        encode({"t": "0800", "41": "TOO-LONG-TERMINAL-ID"})
    assert isinstance(info.value.__cause__, iso8583.EncodeError)
    with pytest.raises(iso8583.DecodeError):
        decode(b"\x00garbage")
