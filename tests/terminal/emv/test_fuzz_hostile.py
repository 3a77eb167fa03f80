"""Bounded fuzz targets (hypothesis) for the TLV decoder and the kernel over a scripted card.

Issue #17: whatever a card sends — any bytes, any nesting, any tag emptied, shortened or
lengthened — the decoder gives data objects or a ``TlvError`` and the kernel gives a result
or one of its own errors (``EmvError``); never a raw Python exception.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import ResponseApdu
from terminal.emv import tlv
from terminal.emv.config import TransactionData
from terminal.emv.errors import EmvError, TlvError
from terminal.emv.kernel import EmvKernel, OnlineRequest, OnlineResponse, TransactionResult

from .cardkit import QVSDC_PDOL, App, KitCard, TweakReader, kernel_config, replace_value

CONFIG = kernel_config()

#: Tags a card sends that the kernel reads: the ones whose shape matters.
CARD_TAGS = [0x82, 0x94, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x92, 0x93, 0x9F32, 0x9F46, 0x9F47,
             0x9F48, 0x9F49, 0x9F4A, 0x5A, 0x57, 0x5F24, 0x5F25, 0x5F28, 0x9F07, 0x9F08,
             0x9F0D, 0x9F0E, 0x9F0F, 0x9F14, 0x9F23, 0x9F42, 0x9F27, 0x9F36, 0x9F26, 0x9F10,
             0x9F4B, 0x9F6C, 0x9F69, 0x9F38, 0x84, 0x87, 0x50]


@st.composite
def nested_objects(draw: st.DrawFn) -> bytes:
    """TLV nesting constructed objects up to 40 deep, with junk bytes beside the children."""
    data = tlv.encode(draw(st.sampled_from([0x5A, 0x9F02, 0x82, 0xDF01])),
                      draw(st.binary(max_size=8)))
    levels = draw(st.lists(st.tuples(st.sampled_from([0x70, 0x77, 0x6F, 0xA5, 0xBF0C, 0x61,
                                                      0xE1]),
                                     st.binary(max_size=2)), max_size=40))
    for tag, junk in levels:
        data = tlv.encode(tag, data + junk)
    return data


@settings(max_examples=200, deadline=None)
@given(data=st.one_of(st.binary(max_size=600), nested_objects()))
def test_decoder_gives_objects_or_tlv_error(data: bytes) -> None:
    """Any input: a list of objects (repr, flatten and find work on it) or a TlvError."""
    try:
        items = tlv.decode(data)
    except TlvError as exc:
        assert exc.offset >= 0
        return
    assert isinstance(repr(items), str)
    assert isinstance(tlv.flatten(items), dict)
    tlv.find(items, 0x5A)


class SturdyReader(TweakReader):
    """The test card itself may choke on what the kernel sends after a mutation (an empty
    PDOL, say); a real card answers 6F00 (no precise diagnosis) then."""

    def respond(self, command: bytes) -> ResponseApdu:
        try:
            return super().respond(command)
        except (IndexError, ValueError, KeyError):
            return ResponseApdu(b"", 0x6F, 0x00)


class Approving:
    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        return OnlineResponse(arc=b"00", issuer_authentication_data=bytes(10))


def _mutate(ins: int, tag: int, value: bytes):  # type: ignore[no-untyped-def]
    def tweak(command: bytes, answer: ResponseApdu, count: int) -> ResponseApdu:
        if command[1] != ins or not answer.data:
            return answer
        try:
            changed = replace_value(answer.data, tag, value)
        except (TlvError, ValueError):
            return answer
        return ResponseApdu(changed, answer.sw1, answer.sw2)

    return tweak


async def _run(app: App, tweak, contactless: bool, amount: int) -> TransactionResult:  # type: ignore[no-untyped-def]
    if contactless:
        app.qvsdc, app.pdol = True, QVSDC_PDOL
    reader = SturdyReader(KitCard(app), tweak)
    session = await reader.connect(await reader.wait_for_card())
    data = TransactionData(amount=amount, currency_numeric=504, when=datetime(2026, 11, 22))
    kernel = EmvKernel(CONFIG, authoriser=Approving())
    return await kernel.transact(session, data, contactless=contactless)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ins=st.sampled_from([0xA4, 0xA8, 0xB2, 0xAE, 0x88, 0xCA]),
    tag=st.sampled_from(CARD_TAGS),
    value=st.one_of(st.just(b""), st.binary(max_size=3), st.binary(min_size=200, max_size=300),
                    nested_objects()),
    oda=st.sampled_from(["sda", "dda", "cda"]),
    contactless=st.booleans(),
    amount=st.sampled_from([2500, 6000, 60000]),
)
def test_kernel_over_a_hostile_card_never_crashes(ins: int, tag: int, value: bytes, oda: str,
                                                  contactless: bool, amount: int) -> None:
    """Any card data object emptied, shortened, lengthened or deeply nested: a result or
    an EmvError, through the real entry point (scripted reader → EmvKernel.transact)."""
    app = App(oda="dda" if contactless else oda)
    try:
        result = asyncio.run(_run(app, _mutate(ins, tag, value), contactless, amount))
    except EmvError:
        return
    assert result.cryptogram in ("TC", "ARQC", "AAC") and result.reason


@st.composite
def issuer_scripts(draw: st.DrawFn) -> bytes:
    """71/72 templates holding 86 commands of any bytes (well-formed APDUs or not)."""
    out = b""
    for template in draw(st.lists(st.sampled_from([0x71, 0x72]), min_size=1, max_size=2)):
        commands = draw(st.lists(st.binary(max_size=12), max_size=3))
        out += tlv.encode(template, b"".join(tlv.encode(0x86, c) for c in commands))
    return out


class Scripted:
    def __init__(self, answer: OnlineResponse) -> None:
        self.answer = answer

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        return self.answer


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arc=st.sampled_from([b"00", b"05", b"55", b"", b"0", b"\xff\xfe\xfd"]),
    iad=st.one_of(st.none(), st.binary(max_size=24)),
    scripts=st.one_of(st.binary(max_size=64), nested_objects(), issuer_scripts()),
    malformed=st.booleans(),
    oda=st.sampled_from(["dda", "cda"]),
)
def test_kernel_over_a_hostile_issuer_answer_never_crashes(arc: bytes, iad: bytes | None,
                                                           scripts: bytes, malformed: bool,
                                                           oda: str) -> None:
    """#17.7: any ARC, tag 91 and script bytes from the host: a result, never a crash; an
    approving ARC is never turned into an error."""
    answer = OnlineResponse(arc=arc, issuer_authentication_data=iad, scripts=scripts,
                            issuer_data_malformed=malformed)

    async def go() -> TransactionResult:
        reader = SturdyReader(KitCard(App(oda=oda)), lambda c, a, n: a)
        session = await reader.connect(await reader.wait_for_card())
        data = TransactionData(amount=60000, currency_numeric=504,
                               when=datetime(2026, 11, 22))
        return await EmvKernel(CONFIG, authoriser=Scripted(answer)).transact(session, data)

    result = asyncio.run(go())
    assert result.first_cryptogram == "ARQC" and result.decision.endswith("_online")
