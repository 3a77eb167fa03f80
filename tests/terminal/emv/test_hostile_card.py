"""A malicious or broken card (or host answer) never crashes the kernel (issue #17, 1–4, 7).

Each input goes through the real entry point: a scripted reader → ``EmvKernel.transact``;
the outcome is the kernel's own error (an ``EmvError``) or a result, never a raw
``IndexError``/``ValueError``/``RecursionError``.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from drivers.base import ResponseApdu
from edge_sync.connectors import Router, RouteRule
from edge_sync.connectors.base import Operation
from edge_sync.connectors.fake import ScriptedConnector, response
from simulators.card.card import EmvCard
from simulators.card.hostile import default_config
from simulators.card.profiles import Interface, get_profile
from simulators.card.reader import SimulatedCardReader
from terminal.emv import tlv
from terminal.emv.config import TransactionData
from terminal.emv.errors import CardDataError, CommandTooLongError, TlvError
from terminal.emv.kernel import EmvKernel, OnlineRequest, OnlineResponse, TransactionResult
from terminal.emv.tvr import Tvr, TvrBit
from terminal.psp_routing import KernelAuthoriser
from tests.fixtures.psp import MAD

from .cardkit import (
    CDOL1,
    QVSDC_PDOL,
    App,
    KitCard,
    TweakReader,
    kernel_config,
    replace_value,
)

WHEN = datetime(2026, 11, 22, 10, 30)


def txn(amount: int = 2500, **kw: Any) -> TransactionData:
    return TransactionData(amount=amount, currency_numeric=504, when=WHEN, **kw)


def tweak_ins(ins: int, change: Any) -> Any:
    """A tweak applying ``change(data) -> data`` to successful answers to ``ins``."""

    def tweak(command: bytes, answer: ResponseApdu, count: int) -> ResponseApdu:
        if command[1] != ins or not answer.data or command[:4] == bytes.fromhex("00A40400"):
            return answer
        return ResponseApdu(change(answer.data), answer.sw1, answer.sw2)

    return tweak


def set_value(ins: int, tag: int, value: bytes) -> Any:
    return tweak_ins(ins, lambda data: replace_value(data, tag, value))


async def run(app: App, tweak: Any, data: TransactionData | None = None, *,
              contactless: bool = False, **kernel_kw: Any) -> TransactionResult:
    if contactless:
        app.qvsdc, app.pdol = True, QVSDC_PDOL
    reader = TweakReader(KitCard(app), tweak)
    session = await reader.connect(await reader.wait_for_card())
    kernel = EmvKernel(kernel_config(), **kernel_kw)
    return await kernel.transact(session, data or txn(), contactless=contactless)


def tvr_of(result: TransactionResult) -> Tvr:
    return Tvr(bytes.fromhex(result.tvr))


class Issuer:
    def __init__(self, answer: OnlineResponse) -> None:
        self.answer = answer

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        return self.answer


def nested(depth: int) -> bytes:
    data = b""
    for _ in range(depth):
        data = tlv.encode(0xE1, data)
    return tlv.encode(0x77, data)


# -- item 1: nesting depth and size ----------------------------------------------------------


async def test_deeply_nested_gpo_answer_is_a_card_data_error() -> None:
    """#17.1: 1,000 nested templates (< 4 KB) in the GPO answer → CardDataError, no recursion."""
    deep = nested(1000)
    assert len(deep) < 4096
    with pytest.raises(CardDataError, match="nested more than"):
        await run(App(), tweak_ins(0xA8, lambda data: deep))


def test_decoder_bounds_depth_and_size() -> None:
    """#17.1: the TLV decoder refuses more than MAX_DEPTH levels and more than MAX_SIZE bytes."""
    assert tlv.decode(nested(tlv.MAX_DEPTH - 1))
    with pytest.raises(TlvError):
        tlv.decode(nested(tlv.MAX_DEPTH + 1))
    with pytest.raises(TlvError, match="more than"):
        tlv.decode(tlv.encode(0x5A, bytes(tlv.MAX_SIZE)))


def test_repr_of_a_deep_tree_is_bounded() -> None:
    """#17.1: repr of a hand-built 5,000-level tree neither recurses nor grows without bound."""
    item = tlv.Tlv(0x70, b"")
    for _ in range(5000):
        item = tlv.Tlv(0x70, b"", [item])
    assert len(repr(item)) < 200


# -- item 2: empty or short mandatory data elements ------------------------------------------


@pytest.mark.parametrize("contactless", [False, True])
async def test_empty_aip_is_a_card_data_error(contactless: bool) -> None:
    """#17.2: an empty AIP (82, 2 bytes: Book 3 Annex A, C1) on either interface →
    CardDataError naming the tag; no record is read and no GENERATE AC sent."""
    app = App()
    if contactless:
        app.qvsdc, app.pdol = True, QVSDC_PDOL
    reader = TweakReader(KitCard(app), set_value(0xA8, 0x82, b""))
    session = await reader.connect(await reader.wait_for_card())
    with pytest.raises(CardDataError) as info:
        await EmvKernel(kernel_config()).transact(session, txn(), contactless=contactless)
    assert info.value.tag == 0x82
    after_gpo = reader.sent[[c[:2] for c in reader.sent].index(b"\x80\xa8") + 1:]
    assert not any(c[1] in (0xB2, 0xAE) for c in after_gpo)


async def test_empty_cid_in_generate_ac_is_a_card_data_error() -> None:
    """#17.2: an empty CID (9F27, 1 byte: Book 3 §6.5.5.4) in the GENERATE AC answer →
    CardDataError."""
    with pytest.raises(CardDataError) as info:
        await run(App(), set_value(0xAE, 0x9F27, b""))
    assert info.value.tag == 0x9F27


async def test_empty_capk_index_fails_sda() -> None:
    """#17.2: an empty CA public key index (8F) on an SDA card fails ODA (TVR, Book 3
    §10.3), the flow goes on."""
    result = await run(App(oda="sda"), set_value(0xB2, 0x8F, b""))
    assert TvrBit.SDA_FAILED in tvr_of(result)
    assert result.oda_result == "failed"


async def test_empty_lcol_counts_as_exceeded() -> None:
    """#17.2: an empty LCOL beside a UCOL → both limit bits (Book 3 §10.6.3; velocity
    checking never fails open)."""
    result = await run(App(), set_value(0xB2, 0x9F14, b""))
    tvr = tvr_of(result)
    assert TvrBit.LCOL_EXCEEDED in tvr and TvrBit.UCOL_EXCEEDED in tvr


async def test_empty_ctq_at_the_cvm_limit_is_a_card_data_error() -> None:
    """#17.2: an empty CTQ (9F6C, 2 bytes: Book C-3 Annex A) when a CVM is required →
    CardDataError naming 9F6C."""
    with pytest.raises(CardDataError) as info:
        await run(App(oda="dda"), set_value(0xA8, 0x9F6C, b""), txn(6000), contactless=True)
    assert info.value.tag == 0x9F6C


@pytest.mark.parametrize("cid", [b"\xc0", b"", b"\x40\x00"], ids=["aar", "empty", "two-bytes"])
async def test_contactless_cid_is_guarded(cid: bytes) -> None:
    """#17.2: CID C0 (AAR, not used by EMV 4.x), empty or two bytes in a qVSDC GPO answer
    → CardDataError (Book 3 §6.5.5.4, as on contact)."""
    with pytest.raises(CardDataError) as info:
        await run(App(oda="dda"), set_value(0xA8, 0x9F27, cid), contactless=True)
    assert info.value.tag == 0x9F27


class TweakedSimulatedReader(SimulatedCardReader):
    """The project's simulated card, its answers passed through ``tweak`` (as TweakReader)."""

    def __init__(self, card: EmvCard, tweak: Any) -> None:
        super().__init__(card)
        self.tweak = tweak

    def respond(self, command: bytes) -> ResponseApdu:
        return self.tweak(command, super().respond(command), 0)


async def tap_mastercard(tweak: Any, amount: int = 2500) -> tuple[TransactionResult, list[bytes]]:
    """A Mastercard M/Chip contactless tap (Kernel 2) on the simulated card, tweaked."""
    reader = TweakedSimulatedReader(
        EmvCard(get_profile("mastercard-contactless"), Interface.CONTACTLESS), tweak)
    session = await reader.connect(await reader.wait_for_card())
    result = await EmvKernel(default_config()).transact(session, txn(amount), contactless=True)
    return result, reader.sent


@pytest.mark.parametrize("cid", [b"\xc0", b"", b"\x40\x00"], ids=["aar", "empty", "two-bytes"])
async def test_mchip_contactless_cid_is_guarded(cid: bytes) -> None:
    """#17.2: CID C0 (AAR), empty or two bytes in an M/Chip GENERATE AC answer →
    CardDataError naming 9F27 (Book 3 §6.5.5.4), as on contact and qVSDC."""
    with pytest.raises(CardDataError) as info:
        await tap_mastercard(set_value(0xAE, 0x9F27, cid))
    assert info.value.tag == 0x9F27


@pytest.mark.parametrize("tag", [0x9F0D, 0x9F0E, 0x9F0F])
@pytest.mark.parametrize("value", [b"", bytes(4), bytes(6)], ids=["empty", "short", "long"])
async def test_issuer_action_code_of_a_wrong_length_is_a_card_data_error(
        tag: int, value: bytes) -> None:
    """#17.2 (found by fuzz/fuzz_kernel.py): an IAC that is not 5 bytes (Book 3 §10.7,
    Annex A) → CardDataError naming it, before GENERATE AC (the card computes nothing)."""
    reader = TweakReader(KitCard(App()), set_value(0xB2, tag, value))
    session = await reader.connect(await reader.wait_for_card())
    with pytest.raises(CardDataError) as info:
        await EmvKernel(kernel_config()).transact(session, txn())
    assert info.value.tag == tag
    assert not any(c[1] == 0xAE for c in reader.sent)


@pytest.mark.parametrize("auc", [b"", b"\xff", b"\xff\x00\x00"], ids=["empty", "short", "long"])
async def test_auc_of_a_wrong_length_sets_service_not_allowed(auc: bytes) -> None:
    """#17.2: an Application Usage Control (9F07) that is not 2 bytes cannot allow the
    service: TVR "requested service not allowed" (Book 3 §10.4.2), never fails open."""
    result = await run(App(), set_value(0xB2, 0x9F07, auc))
    assert TvrBit.SERVICE_NOT_ALLOWED in tvr_of(result)


# -- item 3: DOL data over a short APDU, empty CDOL ------------------------------------------


@pytest.mark.parametrize("contactless", [False, True])
async def test_malformed_pdol_is_a_card_data_error(contactless: bool) -> None:
    """#17.3: a PDOL whose last tag has no length (Book 3 §5.4) → CardDataError naming 9F38
    on either interface, before GET PROCESSING OPTIONS is sent."""
    app = App(oda="dda")
    reader = TweakReader(KitCard(app), lambda c, a, n: a)
    app.qvsdc = contactless
    app.pdol = (QVSDC_PDOL if contactless else app.pdol or b"") + b"\x9f\x35"
    session = await reader.connect(await reader.wait_for_card())
    with pytest.raises(CardDataError) as info:
        await EmvKernel(kernel_config()).transact(session, txn(), contactless=contactless)
    assert info.value.tag == 0x9F38
    assert not any(c[:2] == b"\x80\xa8" for c in reader.sent)


@pytest.mark.parametrize(("tag", "dol"), [(0x8C, "9F0206" "9F"), (0x8D, "8A02" "9F37")],
                         ids=["cdol1-tag-cut", "cdol2-no-length"])
async def test_malformed_cdol_is_a_card_data_error(tag: int, dol: str) -> None:
    """#17.3: a malformed CDOL1 or CDOL2 (Book 3 §5.4) → CardDataError naming it; a bad
    CDOL1 stops before GENERATE AC is sent."""
    reader = TweakReader(KitCard(App()), set_value(0xB2, tag, bytes.fromhex(dol)))
    session = await reader.connect(await reader.wait_for_card())
    with pytest.raises(CardDataError) as info:
        await EmvKernel(kernel_config(), authoriser=Issuer(OnlineResponse(arc=b"00"))
                        ).transact(session, txn(60000))
    assert info.value.tag == tag
    assert sum(c[1] == 0xAE for c in reader.sent) == (0 if tag == 0x8C else 1)


async def test_malformed_tdol_is_a_card_data_error() -> None:
    """#17.3: a CDOL asking for the TC hash (98) over a malformed card TDOL (97, Book 3
    §5.4, §10.8) → CardDataError naming 97, no GENERATE AC sent."""
    app = App(extra_record_tags=[(0x97, b"\x9f\x02")])
    reader = TweakReader(KitCard(app), set_value(0xB2, 0x8C, CDOL1 + bytes.fromhex("9814")))
    session = await reader.connect(await reader.wait_for_card())
    with pytest.raises(CardDataError) as info:
        await EmvKernel(kernel_config()).transact(session, txn())
    assert info.value.tag == 0x97
    assert not any(c[1] == 0xAE for c in reader.sent)


async def test_cdol_over_255_bytes_is_command_too_long() -> None:
    """#17.3: a CDOL1 asking for 261 bytes → CommandTooLongError (a CardDataError) naming 8C
    (Book 1 §9.4: Lc is one byte; Book 3 §6.5.5)."""
    with pytest.raises(CommandTooLongError) as info:
        await run(App(), set_value(0xB2, 0x8C, bytes.fromhex("DF01FF9F0206")))
    assert info.value.tag == 0x8C and isinstance(info.value, CardDataError)


async def test_pdol_over_the_gpo_limit_on_contactless_is_command_too_long() -> None:
    """#17.3: a contactless PDOL asking for 260 bytes → CommandTooLongError, not ValueError
    (Book 3 §6.5.8, §10.1: the 83 template in one short command)."""
    app = App(oda="dda")
    reader = TweakReader(KitCard(app), lambda c, a, n: a)
    app.qvsdc, app.pdol = True, QVSDC_PDOL + bytes.fromhex("DF01F0")
    session = await reader.connect(await reader.wait_for_card())
    with pytest.raises(CommandTooLongError):
        await EmvKernel(kernel_config()).transact(session, txn(), contactless=True)


async def test_empty_cdol_sends_generate_ac_as_case_2() -> None:
    """#17.3: an empty CDOL1 sends GENERATE AC without Lc (case 2), never "Lc = 00" (Book 1
    §9.4, ISO/IEC 7816-3 §12.1.3)."""
    reader = TweakReader(KitCard(App()), set_value(0xB2, 0x8C, b""))
    session = await reader.connect(await reader.wait_for_card())
    result = await EmvKernel(kernel_config()).transact(session, txn())
    gen_ac = [c for c in reader.sent if c[:2] == b"\x80\xae"]
    assert gen_ac and len(gen_ac[0]) == 5
    assert result.first_cryptogram


async def test_ddol_over_255_bytes_fails_dda() -> None:
    """#17.3: a DDOL asking for more than INTERNAL AUTHENTICATE carries fails DDA (TVR;
    Book 3 §10.3, Book 2 §6.5.1)."""
    result = await run(App(), set_value(0xB2, 0x9F49, bytes.fromhex("9F3704DF01FF")))
    assert TvrBit.DDA_FAILED in tvr_of(result)


# -- item 4: non-BCD application currency code -------------------------------------------------


async def test_non_bcd_application_currency_skips_amount_conditions() -> None:
    """#17.4: 9F42 = ABCD with an "under X" rule: the condition is not met, the next rule
    applies (Book 3 §10.5, Annex C3)."""
    cvm_list = bytes.fromhex("00002710" "00000000" "1F06" "1E00")  # no CVM under X, else sign
    result = await run(App(cvm_list=cvm_list), set_value(0xB2, 0x9F42, b"\xab\xcd"))
    assert result.cvm == "signature"


# -- item 7: issuer authentication data from the host ----------------------------------------


async def test_issuer_authentication_data_of_wrong_length_fails_issuer_auth() -> None:
    """#17.7: a 20-byte tag 91 is an issuer authentication failure; the approval stands."""
    issuer = Issuer(OnlineResponse(arc=b"00", issuer_authentication_data=bytes(20)))
    reader = TweakReader(KitCard(App()), lambda c, a, n: a)
    session = await reader.connect(await reader.wait_for_card())
    result = await EmvKernel(kernel_config(), authoriser=issuer).transact(session, txn(60000))
    assert TvrBit.ISSUER_AUTHENTICATION_FAILED in tvr_of(result)
    assert (result.arc, result.decision) == ("00", "approved_online")
    assert not any(c[1] == 0x82 for c in reader.sent)  # never sent to the card


async def test_malformed_de55_in_an_approval_keeps_the_approval() -> None:
    """#17.7: an approval whose DE 55 does not decode → issuer authentication failed, the
    host's answer kept (through the PSP router and the kernel's authoriser)."""
    approved = replace(response(), emv_data=bytes.fromhex("9120AABB"))
    connector = ScriptedConnector("fake", {Operation.AUTHORISE: [approved]})
    router = Router([RouteRule("all", ("fake",))], {"fake": connector}, {})
    bridge = KernelAuthoriser(router, uuid.uuid4(), MAD, network="visa")
    result = await run(App(), lambda c, a, n: a, txn(60000), authoriser=bridge)
    assert bridge.response is not None and bridge.response.approved
    assert TvrBit.ISSUER_AUTHENTICATION_FAILED in tvr_of(result)
    assert (result.arc, result.decision, result.cryptogram) == ("00", "approved_online", "TC")


async def test_card_pan_that_cannot_be_sealed_is_a_card_data_error() -> None:
    """A card whose PAN fails Luhn cannot be sealed for the PSP: CardDataError, no PAN in it."""
    pan = "4761739001010011"  # Luhn-invalid
    connector = ScriptedConnector("fake")
    router = Router([RouteRule("all", ("fake",))], {"fake": connector}, {})
    bridge = KernelAuthoriser(router, uuid.uuid4(), MAD, network="visa")
    with pytest.raises(CardDataError) as info:
        await run(App(pan=pan), lambda c, a, n: a, txn(60000), authoriser=bridge)
    assert pan not in str(info.value) and not connector.calls


@pytest.mark.parametrize(
    ("command",                 "why"),
    [
        ("841E00000501",            "Lc 5, one byte of data"),
        ("84",                      "shorter than a header"),
        ("841E000000AABB",          "extended length"),
    ],
)
async def test_malformed_issuer_script_command_fails_the_script(command: str, why: str) -> None:
    """#17.7: a script command that is not a short APDU is not sent; the script fails
    (TVR byte 5 b6) and the issuer's approval stands (Book 3 §10.10)."""
    script = tlv.encode(0x71, tlv.encode(0x9F18, b"\x00\x00\x00\x01")
                        + tlv.encode(0x86, bytes.fromhex(command)))
    issuer = Issuer(OnlineResponse(arc=b"00", scripts=script))
    result = await run(App(), lambda c, a, n: a, txn(60000), authoriser=issuer)
    assert TvrBit.SCRIPT_FAILED_BEFORE_FINAL_GENAC in tvr_of(result), why
    assert (result.decision, result.script_results) == (
        "approved_online", ["71:00000001:failed:malformed"])
