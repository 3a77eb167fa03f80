"""Kernel defects found against independent EMV test material (issue #13), one test each.

Each test cites the EMV 4.4 section it pins and failed on the kernel before its fix.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from drivers.base import ResponseApdu
from drivers.scripted import ScriptedReader
from terminal.emv.config import TransactionData
from terminal.emv.cvm import parse_cvm_list
from terminal.emv.dates import certificate_expiry
from terminal.emv.errors import CardBlockedError, CardDataError, OdaError
from terminal.emv.kernel import EmvKernel, OnlineRequest, OnlineResponse, TransactionResult
from terminal.emv.oda import certificate_in_force, recover_icc_key, recover_issuer_key
from terminal.emv.tlv import decode, encode_constructed, flatten
from terminal.emv.tvr import Tvr, TvrBit

from .cardkit import (
    PAN,
    VISA_AID,
    App,
    KitCard,
    KitReader,
    TweakReader,
    aid_config,
    capk,
    icc_certificate,
    issuer_certificate,
    issuer_key,
    kernel_config,
    replace_value,
)

WHEN = datetime(2026, 11, 22, 10, 30)
DOMESTIC_AID = bytes.fromhex("A0000000421010")


def txn(amount: int = 2500, **kw: Any) -> TransactionData:
    return TransactionData(amount=amount, currency_numeric=504, when=WHEN, **kw)


async def run(reader: KitReader, data: TransactionData | None = None,
              **kernel_kw: Any) -> TransactionResult:
    session = await reader.connect(await reader.wait_for_card())
    config = kernel_kw.pop("config", None) or kernel_config()
    return await EmvKernel(config, **kernel_kw).transact(session, data or txn())


def tvr_of(result: TransactionResult) -> Tvr:
    return Tvr(bytes.fromhex(result.tvr))


class Issuer:
    def __init__(self, response: OnlineResponse | None) -> None:
        self.response = response

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        return self.response


class ProprietaryRecordCard(KitCard):
    """A card whose AFL also lists record 1 of SFI 12, holding ``record`` as it is."""

    def __init__(self, record: bytes, *, for_oda: bool) -> None:
        super().__init__(App())
        self.proprietary = record
        self.for_oda = for_oda

    def _personalise(self, app: App) -> None:
        super()._personalise(app)
        self.records[(12, 1)] = self.proprietary

    @property
    def afl(self) -> bytes:
        return super().afl + bytes([12 << 3, 1, 1, 1 if self.for_oda else 0])


NOT_TLV = b"PROPRIETARY\xff\x00\x01"  # 'P' = tag 50 whose length 52 overruns: not TLV


async def test_proprietary_sfi_record_that_is_not_tlv_is_not_parsed() -> None:
    """Book 3 §10.2: a record of SFI 11–30 is outside EMV's format rules; not TLV is fine."""
    result = await run(KitReader(ProprietaryRecordCard(NOT_TLV, for_oda=False)))
    assert (result.oda_result, result.cryptogram) == ("ok", "TC")


async def test_proprietary_record_for_oda_that_is_not_a_template_fails_oda() -> None:
    """Book 3 §10.3: an ODA record that is not a 70 template makes ODA fail (TVR), not the
    transaction."""
    result = await run(KitReader(ProprietaryRecordCard(NOT_TLV, for_oda=True)))
    assert result.oda_result == "failed"
    assert TvrBit.DDA_FAILED in tvr_of(result)
    # TAC online sends "DDA failed" online; with no host, TAC default declines.
    assert (result.first_cryptogram, result.cryptogram, result.decision) == (
        "ARQC", "AAC", "declined_unable_online")


async def test_6a81_during_the_list_of_aids_ends_the_session() -> None:
    """Book 1 §12.3.3: SELECT answered 6A81 in the AID search means card blocked: stop."""

    def blocked(command: bytes, answer: ResponseApdu, count: int) -> ResponseApdu:
        if command[1] == 0xA4 and VISA_AID in command:
            return ResponseApdu(b"", 0x6A, 0x81)
        return answer

    reader = TweakReader(KitCard(App(), pse=False), blocked)
    with pytest.raises(CardBlockedError):
        await run(reader)
    assert sum(1 for c in reader.sent if c[1] == 0xA4) == 2  # PSE, then the AID: no more


async def test_final_selection_without_df_name_removes_the_application() -> None:
    """Book 1 §11.3.4, §12.4: an FCI without 84 is a format error: choose again without it."""

    def no_df_name(command: bytes, answer: ResponseApdu, count: int) -> ResponseApdu:
        if command[1] == 0xA4 and command[5:5 + command[4]] == VISA_AID:
            fci = decode(answer.data)[0]
            data = encode_constructed(0x6F, [c for c in fci.children if c.tag != 0x84])
            return ResponseApdu(data, answer.sw1, answer.sw2)
        return answer

    card = KitCard(App(priority=1), App(aid=DOMESTIC_AID, label="CB", priority=2))
    config = kernel_config(aid_config(), aid_config(aid=DOMESTIC_AID, network="cb"))
    result = await run(TweakReader(card, no_df_name), config=config)
    assert result.aid == DOMESTIC_AID.hex().upper()


async def test_oversized_pdol_is_a_card_data_error() -> None:
    """Book 3 Annex B: PDOL data that cannot fit GET PROCESSING OPTIONS is a card-data error."""
    card = KitCard(App(pdol=bytes.fromhex("9F0206DF01FA")))  # 256 bytes of terminal data
    with pytest.raises(CardDataError, match="PDOL asks for 256 bytes") as info:
        await run(KitReader(card))
    assert info.value.tag == 0x9F38


async def test_gpo_template_length_above_127_is_ber_coded() -> None:
    """Book 3 Annex B2: the 83 template of 200 bytes is coded 83 81 C8 in GPO."""
    reader = KitReader(KitCard(App(pdol=bytes.fromhex("DF01C8"))))
    await run(reader)
    gpo = next(c for c in reader.sent if c[:2] == b"\x80\xa8")
    assert gpo[4:8] == bytes.fromhex("CB8381C8")


@pytest.mark.parametrize(
    ("mmyy",  "today",             "in_force"),
    [
        ("1299",  date(2026, 11, 22), False),   # December 1999, not 2099
        ("1249",  date(2026, 11, 22), True),    # December 2049
        ("1126",  date(2026, 11, 30), True),    # valid to the last day of its month
        ("1026",  date(2026, 11, 1),  False),
        ("1326",  date(2026, 11, 1),  False),   # month 13: not in force
    ],
)
def test_certificate_expiry_uses_the_two_digit_year_window(mmyy: str, today: date,
                                                            in_force: bool) -> None:
    """Book 2 §5.3 step 8, §6.4 step 8: MMYY with the 00–49/50–99 window of the app dates."""
    assert certificate_in_force(bytes.fromhex(mmyy), today) is in_force


def test_issuer_certificate_expired_in_1999_is_refused() -> None:
    """Book 2 §5.3: an issuer certificate with expiry 1299 expired in 1999, not 2099."""
    certificate, remainder = issuer_certificate(expiry="1299")
    with pytest.raises(OdaError) as info:
        recover_issuer_key(capk(), certificate, remainder, b"\x03", PAN, date(2026, 11, 22))
    assert info.value.step == "issuer_expired"


def test_icc_certificate_expired_in_1999_is_refused() -> None:
    """Book 2 §6.4: an ICC certificate with expiry 1299 expired in 1999, not 2099."""
    certificate, remainder = icc_certificate(b"static", expiry="1299")
    issuer = issuer_key()
    from terminal.emv.oda import RsaKey

    with pytest.raises(OdaError) as info:
        recover_icc_key(RsaKey(issuer.modulus, b"\x03"), certificate, remainder, b"\x03",
                        b"static", PAN, date(2026, 11, 22))
    assert info.value.step == "icc_expired"


async def test_case4_warning_without_data_fetches_it_with_get_response() -> None:
    """EMV Contact Interface Spec. Annex A: case 4 + 62xx/63xx, no data → GET RESPONSE
    (Le 00); the data comes back with the warning."""
    select = bytes.fromhex("00A4040007A000000003101000")
    fci = bytes.fromhex("6F098407A0000000031010")
    reader = ScriptedReader([(b"", 0x62, 0x83), (fci, 0x90, 0x00)])
    session = await reader.connect(await reader.wait_for_card())
    response = await session.transmit(select)
    assert (response.data, response.sw) == (fci, 0x6283)
    assert reader.sent == [select, bytes.fromhex("00C0000000")]


async def test_case4_warning_when_get_response_finds_nothing() -> None:
    """A warning whose GET RESPONSE is refused is returned alone, with the warning SW."""
    select = bytes.fromhex("00A4040007A000000003101000")
    reader = ScriptedReader([(b"", 0x63, 0x00), (b"", 0x6A, 0x86)])
    session = await reader.connect(await reader.wait_for_card())
    response = await session.transmit(select)
    assert (response.data, response.sw) == (b"", 0x6300)


async def test_case2_warning_is_not_followed() -> None:
    """Case 2 (READ RECORD) with a warning: no GET RESPONSE, the answer as it is."""
    reader = ScriptedReader([(b"", 0x62, 0x82)])
    session = await reader.connect(await reader.wait_for_card())
    response = await session.transmit(bytes.fromhex("00B2010C00"))
    assert (response.sw, len(reader.sent)) == (0x6282, 1)


async def test_velocity_without_last_online_atc_sets_exactly_the_two_limit_bits() -> None:
    """Book 3 §10.6.3: GET DATA not answered → LCOL and UCOL exceeded, not ICC data missing."""

    def no_last_online(command: bytes, answer: ResponseApdu, count: int) -> ResponseApdu:
        if command[:4] == bytes.fromhex("80CA9F13"):
            return ResponseApdu(b"", 0x6A, 0x88)
        return answer

    result = await run(TweakReader(KitCard(App()), no_last_online))
    tvr = tvr_of(result)
    assert TvrBit.LCOL_EXCEEDED in tvr and TvrBit.UCOL_EXCEEDED in tvr
    assert TvrBit.ICC_DATA_MISSING not in tvr and TvrBit.NEW_CARD not in tvr


async def test_velocity_with_atc_not_above_last_online_atc_sets_both_bits() -> None:
    """Book 3 §10.6.3: ATC ≤ last online ATC register → both limit bits."""
    card = KitCard(App())
    card.atc = card.last_online_atc = 0x000C
    tvr = tvr_of(await run(KitReader(card)))
    assert TvrBit.LCOL_EXCEEDED in tvr and TvrBit.UCOL_EXCEEDED in tvr


@pytest.mark.parametrize(
    ("field",     "value",  "bit"),
    [
        ("expiry",    "351331", TvrBit.EXPIRED_APPLICATION),            # month 13
        ("expiry",    "350200", TvrBit.EXPIRED_APPLICATION),            # day 00
        ("effective", "200100", TvrBit.APPLICATION_NOT_YET_EFFECTIVE),  # day 00
        ("effective", "201301", TvrBit.APPLICATION_NOT_YET_EFFECTIVE),  # month 13
    ],
)
async def test_malformed_application_dates_do_not_fail_open(field: str, value: str,
                                                            bit: TvrBit) -> None:
    """Book 3 §10.4.3: an invalid effective/expiration date sets its TVR bit."""
    result = await run(KitReader(KitCard(App(**{field: value}))))
    assert bit in tvr_of(result)


def _tamper_second_cda(command: bytes, answer: ResponseApdu, count: int) -> ResponseApdu:
    if command[1] != 0xAE or count != 2 or not answer.data:
        return answer
    sdad = bytearray(flatten(decode(answer.data))[0x9F4B])
    sdad[5] ^= 0x01
    return ResponseApdu(replace_value(answer.data, 0x9F4B, bytes(sdad)), answer.sw1, answer.sw2)


async def test_cda_failure_on_second_generate_ac_declines_an_online_approval() -> None:
    """Book 2 §6.6, Book 3 §10.8: a TC from GENERATE AC 2 whose CDA fails is void: AAC."""
    reader = TweakReader(KitCard(App(oda="cda")), _tamper_second_cda)
    result = await run(reader, txn(60000), authoriser=Issuer(OnlineResponse(arc=b"00")))
    assert TvrBit.CDA_FAILED in tvr_of(result)
    assert (result.first_cryptogram, result.cryptogram, result.decision) == (
        "ARQC", "AAC", "declined_online")


async def test_cda_failure_on_second_generate_ac_declines_unable_online() -> None:
    """Book 2 §6.6: unable to go online, default action TC, CDA on GENERATE AC 2 fails: AAC."""
    config = kernel_config(aid_config(tac_default=bytes(5)))
    reader = TweakReader(KitCard(App(oda="cda", iac_default=bytes(5))), _tamper_second_cda)
    result = await run(reader, txn(60000, online_available=False), config=config)
    assert TvrBit.CDA_FAILED in tvr_of(result)
    assert (result.cryptogram, result.decision) == ("AAC", "declined_unable_online")


async def test_cda_on_both_generate_ac_commands_succeeds_untampered() -> None:
    """The control: the same online CDA flow without tampering is approved (TC)."""
    reader = TweakReader(KitCard(App(oda="cda")), lambda c, a, n: a)
    result = await run(reader, txn(60000), authoriser=Issuer(OnlineResponse(arc=b"00")))
    assert (result.cryptogram, result.decision, result.oda_result) == (
        "TC", "approved_online", "ok")


async def test_public_entry_to_initiate_and_read() -> None:
    """#13 item 10: selection, then GPO and the records through public names only."""
    reader = KitReader(KitCard(App()))
    session = await reader.connect(await reader.wait_for_card())
    flow = await EmvKernel(kernel_config()).contact_flow(session, txn())
    await flow.initiate_and_read()
    assert flow.aip == App().aip
    assert {0x5A, 0x5F24, 0x8C, 0x8D, 0x8E} <= set(flow.card)
    assert flow.static_data  # records listed for ODA were collected


def test_public_cvm_list_parsing_gives_amounts_x_and_y() -> None:
    """Book 3 §10.5 / Annex C3: X, Y and the CV Rules of an 8E."""
    parsed = parse_cvm_list(bytes.fromhex("000003E8" "000007D0" "4203" "1F06"))
    assert parsed is not None
    assert (parsed.amount_x, parsed.amount_y) == (1000, 2000)
    assert [(r.method, r.condition, r.apply_succeeding) for r in parsed.rules] == [
        (0x02, 0x03, True), (0x1F, 0x06, False)]
    assert parse_cvm_list(bytes.fromhex("000003E8000007D042")) is None


def test_public_certificate_expiry() -> None:
    """Book 2 §5.3: the last day of MMYY, with the two-digit-year window."""
    assert certificate_expiry(bytes.fromhex("1299")) == date(1999, 12, 31)
    assert certificate_expiry(bytes.fromhex("0228")) == date(2028, 2, 29)
    assert certificate_expiry(b"\x12") is None
