"""The contact kernel end to end against the test card kit (EMV 4.4 Book 3 §10)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest

from drivers.base import EncryptedPin, ResponseApdu
from drivers.errors import PinEntryCancelledError, PinPadNoAnswerError
from terminal.emv.config import TransactionData
from terminal.emv.errors import (
    ApplicationBlockedError,
    CardDataError,
    CardError,
    CardRemovedMidTransactionError,
    NoApplicationError,
)
from terminal.emv.kernel import EmvKernel, OnlineRequest, OnlineResponse, TransactionResult
from terminal.emv.selection import Candidate
from terminal.emv.tlv import encode, encode_constructed
from terminal.emv.tvr import Tvr, TvrBit

from .cardkit import CDOL2, PAN, App, KitCard, KitReader, aid_config, kernel_config

WHEN = datetime(2026, 11, 22, 10, 30)


def txn(amount: int = 2500, **kw: Any) -> TransactionData:
    return TransactionData(amount=amount, currency_numeric=504, when=WHEN, **kw)


async def run(card: KitCard, data: TransactionData | None = None, reader: KitReader | None = None,
              **kernel_kw: Any) -> TransactionResult:
    reader = reader or KitReader(card)
    session = await reader.connect(await reader.wait_for_card())
    config = kernel_kw.pop("config", None) or kernel_config()
    kernel = EmvKernel(config, **kernel_kw)
    return await kernel.transact(session, data or txn())


def tvr_of(result: TransactionResult) -> Tvr:
    return Tvr(bytes.fromhex(result.tvr))


class Issuer:
    """A scripted issuer: answers with a fixed response and keeps the requests."""

    def __init__(self, response: OnlineResponse | None) -> None:
        self.response = response
        self.requests: list[OnlineRequest] = []

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        self.requests.append(request)
        return self.response


@pytest.mark.parametrize(
    ("oda",  "tvr",        "tsi",  "cryptogram"),
    [
        ("sda",  "0200000000", "E800", "TC"),
        ("dda",  "0000000000", "E800", "TC"),
        ("cda",  "0000000000", "E800", "TC"),
        ("none", "8000000000", "6800", "AAC"),
    ],
)
async def test_offline_data_authentication_methods(oda: str, tvr: str, tsi: str,
                                                   cryptogram: str) -> None:
    """Each ODA method verifies; TVR/TSI are bit-exact and the TACs decide the cryptogram."""
    result = await run(KitCard(App(oda=oda)))
    assert (result.oda, result.tvr, result.tsi, result.cryptogram) == (oda, tvr, tsi, cryptogram)
    assert result.oda_result == ("not_performed" if oda == "none" else "ok")


@pytest.mark.parametrize(
    ("oda", "bit"),
    [
        ("sda", TvrBit.SDA_FAILED),
        ("dda", TvrBit.DDA_FAILED),
        ("cda", TvrBit.CDA_FAILED),
    ],
)
async def test_tampered_signature_fails_oda_and_goes_on(oda: str, bit: TvrBit) -> None:
    """A tampered signature sets its TVR bit; the TACs (online) send it online, approved."""
    issuer = Issuer(OnlineResponse(arc=b"00"))
    result = await run(KitCard(App(oda=oda, tamper_signature=True)), authoriser=issuer)
    assert result.oda_result == "failed"
    assert bit in tvr_of(result)
    if oda == "cda":
        # CDA is checked on GENERATE AC: the card's TC is void, the terminal declines.
        assert (result.first_cryptogram, result.cryptogram) == ("TC", "AAC")
    else:
        assert (result.first_cryptogram, result.cryptogram, result.decision) == (
            "ARQC", "TC", "approved_online")


async def test_tampered_static_data_fails_sda() -> None:
    """Records changed after signing break the SDA hash."""
    result = await run(KitCard(App(oda="sda", tamper_static=True)))
    assert TvrBit.SDA_FAILED in tvr_of(result)


async def test_unknown_capk_fails_oda_without_missing_data() -> None:
    """A CAPK index the terminal lacks fails ODA (not ICC data missing)."""
    result = await run(KitCard(App(oda="dda")), config=kernel_config(capks=()))
    tvr = tvr_of(result)
    assert TvrBit.DDA_FAILED in tvr and TvrBit.ICC_DATA_MISSING not in tvr


async def test_expired_card_is_declined_when_offline() -> None:
    """Expired application: TVR byte 2 b7; TAC online → ARQC, unable online → TAC default → AAC."""
    result = await run(KitCard(App(expiry="241231")), txn(online_available=False))
    assert TvrBit.EXPIRED_APPLICATION in tvr_of(result)
    assert (result.first_cryptogram, result.cryptogram, result.decision, result.arc) == (
        "ARQC", "AAC", "declined_unable_online", "Z3")


async def test_not_yet_effective_and_version_mismatch() -> None:
    """Processing restrictions: effective date in the future, different application versions."""
    config = kernel_config(aid_config(application_version=b"\x00\x96"))
    result = await run(KitCard(App(effective="271231")), config=config)
    tvr = tvr_of(result)
    assert TvrBit.APPLICATION_NOT_YET_EFFECTIVE in tvr
    assert TvrBit.DIFFERENT_APP_VERSIONS in tvr


@pytest.mark.parametrize("pse", [True, False])
async def test_blocked_application(pse: bool) -> None:
    """SELECT answering 6283 ends with ApplicationBlockedError, with or without a PSE."""
    with pytest.raises(ApplicationBlockedError) as info:
        await run(KitCard(App(blocked=True), pse=pse))
    assert info.value.sw == 0x6283


async def test_no_matching_application() -> None:
    """A card whose only AID the terminal does not know raises NoApplicationError."""
    with pytest.raises(NoApplicationError):
        await run(KitCard(App(aid=bytes.fromhex("A0000000999999"))))


@pytest.mark.parametrize("pse", [True, False])
async def test_several_applications_go_to_the_chooser_by_priority(pse: bool) -> None:
    """Both co-badged applications reach the chooser, priority 1 first; its choice is used."""
    domestic = bytes.fromhex("D5040000011010")
    card = KitCard(App(priority=2), App(aid=domestic, label="CARTE NATIONALE", priority=1),
                   pse=pse)
    config = kernel_config(aid_config(), aid_config(aid=domestic, label="CN",
                                                    partial_match=False))
    seen: list[list[bytes]] = []

    async def chooser(candidates: Sequence[Candidate]) -> Candidate:
        seen.append([c.aid for c in candidates])
        return candidates[1]

    result = await run(card, config=config, chooser=chooser)
    assert seen == [[domestic, bytes.fromhex("A0000000031010")]]
    assert result.aid == "A0000000031010"


async def test_partial_aid_match_without_pse() -> None:
    """A card AID longer than the terminal's matches when partial matching is allowed."""
    long_aid = bytes.fromhex("A000000003101001")
    result = await run(KitCard(App(aid=long_aid), pse=False))
    assert result.aid == long_aid.hex().upper()


@pytest.mark.parametrize("gpo_format", [1, 2])
async def test_gpo_and_generate_ac_formats(gpo_format: int) -> None:
    """Format 1 (80) and format 2 (77) answers give the same transaction."""
    result = await run(KitCard(App(oda="dda", gpo_format=gpo_format)))
    assert (result.cryptogram, result.oda_result) == ("TC", "ok")
    assert len(result.application_cryptogram) == 16


async def test_unknown_proprietary_tags_and_several_sfis() -> None:
    """Records across SFIs 1–3 with proprietary tags (DF7F, 9F7C) are read and ignored."""
    card = KitCard(App(extra_record_tags=[(0x9F7C, b"\x01" * 4), (0xDF21, b"\x99")]))
    result = await run(card)
    assert result.emv_data[0xDF7F] == b"\x01\x02"
    assert result.emv_data[0xDF21] == b"\x99"
    sfis = {c[3] >> 3 for c in card.commands if c[1] == 0xB2}
    assert {1, 2, 3} <= sfis


class RawSession:
    """A session that does not follow 61xx/6Cxx itself, as some readers do."""

    def __init__(self, card: KitCard, six_c: bool = False) -> None:
        self.card = card
        self.six_c = six_c
        self.reader = "raw"
        self.atr = b"\x3b\x00"
        self.asked_le: set[bytes] = set()

    async def transmit(self, apdu: bytes) -> ResponseApdu:
        if self.six_c and apdu[1] == 0xB2 and apdu[4] == 0x00 and apdu not in self.asked_le:
            self.asked_le.add(apdu)
            full = self.card.respond(apdu)
            self.card.pending = b""
            return ResponseApdu(b"", 0x6C, len(full.data) if full.data else 0)
        return self.card.respond(apdu)

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("six_c", [False, True])
async def test_kernel_follows_61xx_and_6cxx_itself(six_c: bool) -> None:
    """A reader handing back 61xx/6Cxx still gives a complete transaction."""
    card = KitCard(App(), t0=not six_c)
    kernel = EmvKernel(kernel_config())
    result = await kernel.transact(RawSession(card, six_c=six_c), txn())  # type: ignore[arg-type]
    assert result.cryptogram == "TC"
    if not six_c:
        assert any(c[:2] == b"\x00\xc0" for c in card.commands)


async def test_card_with_61xx_through_the_driver() -> None:
    """The scripted driver session resolves 61xx with GET RESPONSE; the kernel is unaware."""
    result = await run(KitCard(App(), t0=True))
    assert result.cryptogram == "TC"


class RemovingReader(KitReader):
    def __init__(self, card: KitCard, after: int) -> None:
        super().__init__(card)
        self.after = after

    def respond(self, command: bytes) -> ResponseApdu:
        if len(self.sent) >= self.after:
            self.remove()
            self.card_present = False
        return super().respond(command)


async def test_card_removed_mid_transaction() -> None:
    """The driver's CardRemovedError becomes CardRemovedMidTransactionError (ask for the card again)."""
    card = KitCard(App())
    reader = KitReader(card)
    session = await reader.connect(await reader.wait_for_card())
    kernel = EmvKernel(kernel_config())

    original = card.respond

    def respond(command: bytes) -> ResponseApdu:
        if command[1] == 0xB2 and (command[3] >> 3) == 2:
            reader.remove()
        return original(command)

    card.respond = respond  # type: ignore[method-assign]
    with pytest.raises(CardRemovedMidTransactionError):
        await kernel.transact(session, txn())


class FaultyReader(KitReader):
    """Answers one instruction with a fixed fault."""

    def __init__(self, card: KitCard, ins: int, answer: ResponseApdu) -> None:
        super().__init__(card)
        self.ins, self.answer = ins, answer

    def respond(self, command: bytes) -> ResponseApdu:
        if command[1] == self.ins and command[:4] != bytes.fromhex("00A40400"):
            self.card.respond(command)
            return self.answer
        return super().respond(command)


@pytest.mark.parametrize(
    ("ins",  "data",                      "sw",   "error"),
    [
        (0xA8, bytes.fromhex("77055A"),     0x9000, CardDataError),   # truncated TLV
        (0xA8, b"\x13\x37\xde\xad\xbe\xef", 0x9000, CardDataError),   # random bytes
        (0xA8, b"",                         0x6A80, CardError),       # wrong SW
        (0xB2, bytes.fromhex("70085A04"),   0x9000, CardDataError),   # truncated record
        (0xB2, b"",                         0x6F00, CardError),       # record error SW
        (0xB2, encode(0x71, b"\x01"),       0x9000, CardDataError),   # not a 70 template
        (0xAE, b"\xff\xfe",                 0x9000, CardDataError),   # garbage GENERATE AC
        (0xAE, b"",                         0x6985, CardError),       # GENERATE AC refused
        (0xAE, encode(0x80, b"\xc0" + bytes(11)), 0x9000, CardDataError),  # CID AAR
    ],
)
async def test_garbage_answers_raise_kernel_errors(ins: int, data: bytes, sw: int,
                                                   error: type[Exception]) -> None:
    """Garbage, truncated TLV and wrong status words end with a kernel error, never a crash."""
    reader = FaultyReader(KitCard(App()), ins, ResponseApdu(data, sw >> 8, sw & 0xFF))
    with pytest.raises(error):
        await run(reader.card, reader=reader)


async def test_truncated_tlv_error_carries_offset() -> None:
    """A malformed record's error names the offset inside the record."""
    reader = FaultyReader(KitCard(App()), 0xB2,
                          ResponseApdu(bytes.fromhex("70085A04"), 0x90, 0x00))
    with pytest.raises(CardDataError) as info:
        await run(reader.card, reader=reader)
    assert info.value.fields["offset"] == 0


async def test_card_returning_a_stronger_cryptogram_is_refused() -> None:
    """Asking AAC and getting TC is a card error (Book 3 §6.5.5.4)."""
    card = KitCard(App(oda="none", decide="tc", iac_denial=b"\xff" * 5))
    reader = FaultyReader(card, 0xAE, ResponseApdu(
        encode_constructed(0x77, [(0x9F27, b"\x40"), (0x9F36, b"\x00\x01"),
                                  (0x9F26, bytes(8))]), 0x90, 0x00))
    with pytest.raises(CardDataError):
        await run(card, reader=reader)


async def test_floor_limit_sends_online_and_issuer_approves() -> None:
    """Amount over the floor limit: TVR b4b8, ARQC, EXTERNAL AUTHENTICATE with 91, TC."""
    issuer = Issuer(OnlineResponse(arc=b"00", issuer_authentication_data=bytes(10)))
    card = KitCard(App())
    result = await run(card, txn(60000), authoriser=issuer)
    assert TvrBit.FLOOR_LIMIT_EXCEEDED in tvr_of(result)
    assert (result.first_cryptogram, result.cryptogram, result.decision) == (
        "ARQC", "TC", "approved_online")
    assert any(c[1] == 0x82 for c in card.commands)
    assert int(result.tsi, 16) & 0x1000  # TSI byte 1 b5 issuer authentication performed
    assert issuer.requests[0].icc_data[0x9F27] == b"\x80"


async def test_issuer_authentication_failure_sets_tvr() -> None:
    """EXTERNAL AUTHENTICATE refused: TVR byte 5 b7."""
    card = KitCard(App())
    card.ext_auth_sw = 0x6300
    issuer = Issuer(OnlineResponse(arc=b"00", issuer_authentication_data=bytes(10)))
    result = await run(card, txn(60000), authoriser=issuer)
    assert TvrBit.ISSUER_AUTHENTICATION_FAILED in tvr_of(result)


async def test_issuer_authentication_data_in_cdol2() -> None:
    """CDOL2 asking for 91: no EXTERNAL AUTHENTICATE, 91 travels in GENERATE AC 2."""
    card = KitCard(App(cdol2=CDOL2 + bytes.fromhex("910A")))
    iad = bytes(range(10))
    issuer = Issuer(OnlineResponse(arc=b"00", issuer_authentication_data=iad))
    result = await run(card, txn(60000), authoriser=issuer)
    assert not any(c[1] == 0x82 for c in card.commands)
    gen_ac2 = [c for c in card.commands if c[1] == 0xAE][1]
    assert iad in gen_ac2
    assert result.decision == "approved_online"


async def test_issuer_declines() -> None:
    """ARC 05: GENERATE AC 2 asks AAC."""
    result = await run(KitCard(App()), txn(60000), authoriser=Issuer(OnlineResponse(arc=b"05")))
    assert (result.cryptogram, result.decision) == ("AAC", "declined_online")


async def test_issuer_scripts_before_and_after_final_generate_ac() -> None:
    """71 scripts run before GENERATE AC 2, 72 after; a failing command sets TVR byte 5."""
    script71 = encode_constructed(0x71, [(0x9F18, b"\x00\x00\x00\x01"),
                                         (0x86, bytes.fromhex("841E000008AABBCCDDEEFF0011"))])
    script72 = encode_constructed(0x72, [(0x9F18, b"\x00\x00\x00\x02"),
                                         (0x86, bytes.fromhex("00DA000000"))])  # 6D00
    card = KitCard(App())
    issuer = Issuer(OnlineResponse(arc=b"00", scripts=script71 + script72))
    result = await run(card, txn(60000), authoriser=issuer)
    ins = [c[1] for c in card.commands]
    assert ins.index(0x1E) < max(i for i, x in enumerate(ins) if x == 0xAE) < ins.index(0xDA)
    assert result.script_results == ["71:00000001:ok", "72:00000002:failed:6D00"]
    assert result.issuer_script_results == "2000000001" "1100000002"  # 9F5B
    tvr = tvr_of(result)
    assert TvrBit.SCRIPT_FAILED_AFTER_FINAL_GENAC in tvr
    assert TvrBit.SCRIPT_FAILED_BEFORE_FINAL_GENAC not in tvr
    assert int(result.tsi, 16) & 0x0400


@pytest.mark.parametrize(
    ("lcol", "ucol", "last_online", "bits"),
    [
        (5,      10,     0x000C,         set()),
        (3,      10,     0x000C,         {TvrBit.LCOL_EXCEEDED}),
        (1,      2,      0x000C,         {TvrBit.LCOL_EXCEEDED, TvrBit.UCOL_EXCEEDED}),
        (5,      100,    0x0000,         {TvrBit.LCOL_EXCEEDED, TvrBit.NEW_CARD}),
    ],
)
async def test_velocity_checking(lcol: int, ucol: int, last_online: int,
                                 bits: set[TvrBit]) -> None:
    """ATC − last online ATC against LCOL/UCOL; last online ATC 0 is a new card."""
    card = KitCard(App(lcol=lcol, ucol=ucol))
    card.last_online_atc = last_online
    result = await run(card)
    velocity = {TvrBit.LCOL_EXCEEDED, TvrBit.UCOL_EXCEEDED, TvrBit.NEW_CARD}
    assert set(tvr_of(result).set_bits()) & velocity == bits


async def test_random_selection_selects_online() -> None:
    """Random transaction selection: target 99 % below the threshold selects online."""
    config = kernel_config(aid_config(target_percent=99, max_target_percent=99))
    result = await run(KitCard(App()), config=config)
    assert TvrBit.RANDOMLY_SELECTED_ONLINE in tvr_of(result)


@pytest.mark.parametrize(
    ("dice",    "selected"),
    [
        (0x00,      True),    # 0000 % 99 + 1 = 1 ≤ 20 %: selected
        (0xFF,      False),   # FFFF % 99 + 1 = 97 > 20 %: not selected
    ],
)
async def test_random_selection_follows_the_injected_source(dice: int, selected: bool) -> None:
    """Book 3 §10.6.2 with a seeded source (KernelConfig.random_bytes): one outcome each."""
    config = kernel_config(aid_config(target_percent=20, max_target_percent=50),
                           random_bytes=lambda n: bytes([dice]) * n)
    result = await run(KitCard(App()), config=config)
    assert (TvrBit.RANDOMLY_SELECTED_ONLINE in tvr_of(result)) is selected
    # Selected: ARQC, no host, and the card's IAC default (byte 4 b5) declines.
    assert result.decision == ("declined_unable_online" if selected else "approved_offline")


async def test_online_pin_is_entered() -> None:
    """CVM 42 03 with a PIN pad: the enciphered PIN is kept, 9F34 = 420300, TVR b3b3."""
    pin = EncryptedPin(ksn=bytes(10), pin_block=bytes(8), format=0)

    async def pin_entry(request: Any) -> EncryptedPin:
        assert request.amount == 2500
        return pin

    issuer = Issuer(OnlineResponse(arc=b"00"))
    result = await run(KitCard(App()), pin_entry=pin_entry, authoriser=issuer)
    assert (result.cvm, result.cvm_results) == ("online_pin", "420300")
    assert TvrBit.ONLINE_PIN_ENTERED in tvr_of(result)
    assert result.online_pin is pin


@pytest.mark.parametrize(
    ("error",                                          "bit"),
    [
        (PinEntryCancelledError("cancelled", port="/dev/x"),  TvrBit.PIN_NOT_ENTERED),
        (PinPadNoAnswerError("no answer", port="/dev/x"),     TvrBit.PIN_PAD_NOT_PRESENT),
    ],
)
async def test_online_pin_failure_falls_to_signature(error: Exception, bit: TvrBit) -> None:
    """A failed online PIN (b7 set) moves on to signature; the reason is in TVR byte 3."""
    async def pin_entry(request: Any) -> Any:
        raise error

    result = await run(KitCard(App()), pin_entry=pin_entry)
    assert (result.cvm, result.cvm_results) == ("signature", "1E0300")
    assert bit in tvr_of(result)


@pytest.mark.parametrize(
    ("cvm_list",                       "amount", "method",    "results", "failed"),
    [
        ("00000000000000001F00",         2500,     "no_cvm",    "1F0002",  False),
        ("00000000000000000100",         2500,     "failed",    "010001",  True),
        ("00000000000000002500",         2500,     "failed",    "250001",  True),   # unknown
        ("000003E8000000001F06" "1E00",  500,      "no_cvm",    "1F0602",  False),  # under X
        ("000003E8000000001F06" "1E00",  5000,     "signature", "1E0000",  False),  # over X
        ("00000000000000001F04",         2500,     "none",      "3F0001",  True),   # no match
        ("0000",                         2500,     "none",      "3F0000",  False),  # malformed
    ],
)
async def test_cvm_list_processing(cvm_list: str, amount: int, method: str, results: str,
                                   failed: bool) -> None:
    """Conditions, unrecognised and unsupported methods, and 9F34 as Book 3 §10.5 says."""
    result = await run(KitCard(App(cvm_list=bytes.fromhex(cvm_list))), txn(amount))
    assert (result.cvm, result.cvm_results) == (method, results)
    assert (TvrBit.CARDHOLDER_VERIFICATION_FAILED in tvr_of(result)) is failed


async def test_no_card_data_in_logs_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    """A full online run logs nothing with the PAN; repr of results and requests masks it."""
    caplog.set_level(logging.DEBUG)
    issuer = Issuer(OnlineResponse(arc=b"00"))
    result = await run(KitCard(App(oda="cda")), txn(60000), authoriser=issuer)
    assert PAN not in caplog.text
    assert PAN not in repr(result) and PAN not in str(result.as_json())
    assert PAN not in repr(issuer.requests[0])
    assert result.pan_masked == "476173…0010"


async def test_read_only_returns_card_identity() -> None:
    """EmvKernel.read selects and reads records without a cryptogram."""
    reader = KitReader(KitCard(App()))
    session = await reader.connect(await reader.wait_for_card())
    result = await EmvKernel(kernel_config()).read(session)
    assert (result.aid, result.label, result.pan_masked, result.expiry) == (
        "A0000000031010", "VISA CREDIT", "476173…0010", "3512")
    assert not any(c[1] == 0xAE for c in reader.card.commands)


def test_online_response_approval_codes() -> None:
    """ARC 00/08/10/11 approve; anything else declines."""
    assert OnlineResponse(arc=b"00").approved
    assert not OnlineResponse(arc=b"51").approved
    assert encode(0x8A, b"00") == bytes.fromhex("8A023030")


def test_pin_request_repr_masks_the_pan() -> None:
    """The PIN entry request carries the clear PAN for the pad, never in its repr."""
    from terminal.emv.cvm import OnlinePinRequest

    request = OnlinePinRequest(PAN, 2500, 504)
    assert PAN not in repr(request) and request.pan_masked == "476173…0010"


async def test_gpo_refusal_returns_to_selection() -> None:
    """GPO 6985 drops that application and selection goes on with the next (Book 3 §10.1)."""
    domestic = bytes.fromhex("D5040000011010")
    card = KitCard(App(aid=domestic, label="CARTE NATIONALE", priority=1, gpo_sw=0x6985),
                   App(priority=2))
    config = kernel_config(aid_config(), aid_config(aid=domestic, label="CN"))
    result = await run(card, config=config)
    assert result.aid == "A0000000031010"


async def test_gpo_refusal_by_every_application() -> None:
    """When every application refuses GPO the transaction is not allowed."""
    from terminal.emv.errors import TransactionNotAllowedError

    with pytest.raises(TransactionNotAllowedError):
        await run(KitCard(App(gpo_sw=0x6985)))


async def test_confirmation_required_application_is_skipped_without_confirmation() -> None:
    """87 b8 set: an unattended terminal (no confirmation) selects the next application."""
    domestic = bytes.fromhex("D5040000011010")
    card = KitCard(App(aid=domestic, label="CARTE NATIONALE", priority=0x81), App(priority=2))
    config = kernel_config(aid_config(), aid_config(aid=domestic, label="CN"),
                           cardholder_confirmation=False)
    result = await run(card, config=config)
    assert result.aid == "A0000000031010"


@pytest.mark.parametrize("oda", ["sda", "dda"])
async def test_oda_record_in_sfi_11_counts_whole(oda: str) -> None:
    """An ODA record from SFI 11–30 is authenticated with its 70 tag and length."""
    card = KitCard(App(oda=oda, sfi11=True))
    result = await run(card)
    assert result.oda_result == "ok"
    assert any(c[1] == 0xB2 and c[3] >> 3 == 11 for c in card.commands)


async def test_cda_on_both_generate_ac() -> None:
    """CDA online: both GENERATE AC answers are signed and verify (hash over PDOL+CDOL1+CDOL2)."""
    card = KitCard(App(oda="cda"))
    result = await run(card, txn(60000), authoriser=Issuer(OnlineResponse(arc=b"00")))
    assert (result.oda_result, result.first_cryptogram, result.cryptogram) == ("ok", "ARQC", "TC")
    gen_acs = [c for c in card.commands if c[1] == 0xAE]
    assert [c[2] for c in gen_acs] == [0x90, 0x50]  # ARQC+CDA, then TC+CDA
    assert TvrBit.CDA_FAILED not in tvr_of(result)
