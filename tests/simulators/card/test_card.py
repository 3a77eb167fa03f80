"""The simulated cards answer as EMV cards: selection, records, ODA, cryptograms, scripts."""

from __future__ import annotations

import pytest

from drivers.base import CardReader
from drivers.reader_errors import CardRemovedError
from simulators.card import EmvCard, get_profile, in_process_reader, issuer
from simulators.card.card import AC_AAC, AC_ARQC, AC_TC
from simulators.card.profiles import PROFILES, Interface, luhn_ok
from terminal.emv import dol, tlv
from tests.simulators.card.terminal_side import check_sdad, records_data, recover_icc_key

PSE = bytes.fromhex("00A404000E315041592E5359532E444446303100")
PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
TERMINAL = {
    0x9F02: bytes.fromhex("000000002500"),
    0x9F03: bytes(6),
    0x9F1A: bytes.fromhex("0504"),
    0x95: bytes(5),
    0x5F2A: bytes.fromhex("0504"),
    0x9A: bytes.fromhex("261122"),
    0x9C: b"\x00",
    0x9F37: bytes.fromhex("CAFEBABE"),
    0x9F35: b"\x22",
    0x9F34: bytes.fromhex("1F0302"),
    0x9F66: bytes.fromhex("36000000"),
}


def select(aid: str) -> bytes:
    raw = bytes.fromhex(aid)
    return bytes([0x00, 0xA4, 0x04, 0x00, len(raw)]) + raw + b"\x00"


def gpo(pdol_data: bytes) -> bytes:
    body = tlv.encode(0x83, pdol_data)
    return bytes([0x80, 0xA8, 0x00, 0x00, len(body)]) + body + b"\x00"


def generate_ac(p1: int, data: bytes) -> bytes:
    return bytes([0x80, 0xAE, p1, 0x00, len(data)]) + data + b"\x00"


def _is_tlv(record: bytes) -> bool:
    try:
        tlv.decode(record)
    except tlv.TlvError:
        return False
    return True


class Flow:
    """A minimal terminal walking a card; keeps what the ODA checks need."""

    def __init__(self, card: EmvCard) -> None:
        self.card = card
        card.power_on()
        self.records: list[bytes] = []
        self.static = b""

    def send(self, apdu: bytes) -> tuple[bytes, int]:
        response = self.card.process(apdu)
        return response[:-2], int.from_bytes(response[-2:], "big")

    def start(self, aid: str, terminal: dict[int, bytes] | None = None) -> dict[int, bytes]:
        fci, sw = self.send(select(aid))
        assert sw == 0x9000
        pdol = tlv.flatten(tlv.decode(fci)).get(0x9F38, b"")
        self.pdol_data = dol.build_dol(pdol, terminal or TERMINAL)
        data, sw = self.send(gpo(self.pdol_data))
        assert sw == 0x9000
        (template,) = tlv.decode(data)
        if template.tag == 0x80:
            self.aip, afl = template.value[:2], template.value[2:]
            gpo_values = {0x82: self.aip, 0x94: afl}
        else:
            gpo_values = tlv.flatten([template])
            self.aip, afl = gpo_values[0x82], gpo_values[0x94]
        for i in range(0, len(afl), 4):
            sfi, first, last, oda = afl[i] >> 3, afl[i + 1], afl[i + 2], afl[i + 3]
            for number in range(first, last + 1):
                record, sw = self.send(bytes([0, 0xB2, number, (sfi << 3) | 4, 0]))
                assert sw == 0x9000
                if sfi <= 10 or _is_tlv(record):  # Book 3 §10.2: SFI 11–30 need not be
                    self.records.append(record)
                if number < first + oda:
                    # Book 3 §10.3: SFI 1–10 without the template, SFI 11–30 whole.
                    self.static += tlv.decode(record)[0].value if sfi <= 10 else record
        self.data = records_data(self.records) | gpo_values
        if self.data.get(0x9F4A) == b"\x82":
            self.static += self.aip
        return self.data


def _ac_tags(values: dict[int, bytes], aip: bytes, atc: bytes, iad: bytes) -> dict[int, bytes]:
    tags = {t: values[t] for t in (0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37)}
    return tags | {0x82: aip, 0x9F36: atc, 0x9F10: iad}


def test_profiles_are_sane() -> None:
    """Every profile's PANs pass Luhn and every profile builds a card."""
    for profile in PROFILES.values():
        assert all(luhn_ok(app.pan) for app in profile.apps)
        EmvCard(profile)
    with pytest.raises(ValueError, match="known"):
        get_profile("amex")


def test_in_process_reader_is_a_card_reader() -> None:
    """The in-process simulator implements drivers.base.CardReader."""
    assert isinstance(in_process_reader("cb"), CardReader)


@pytest.mark.parametrize(
    ("profile",          "aids"),
    [
        ("visa-credit",      ["A0000000031010"]),
        ("mastercard-debit", ["A0000000041010"]),
        ("domestic-visa",    ["D5040000011010", "A0000000031010"]),
    ],
)
def test_pse_directory(profile: str, aids: list[str]) -> None:
    """SELECT PSE gives the directory SFI; its record lists the applications with priorities."""
    flow = Flow(EmvCard(get_profile(profile)))
    fci, sw = flow.send(PSE)
    assert sw == 0x9000
    sfi = tlv.flatten(tlv.decode(fci))[0x88][0]
    record, sw = flow.send(bytes([0, 0xB2, 1, (sfi << 3) | 4, 0]))
    entries = [e for e in tlv.decode(record)[0].children if e.tag == 0x61]
    assert [e.find(0x4F).value.hex().upper() for e in entries] == aids  # type: ignore[union-attr]
    assert flow.send(bytes([0, 0xB2, 2, (sfi << 3) | 4, 0]))[1] == 0x6A83


def test_cb_has_no_pse_and_answers_t0_style() -> None:
    """The CB card refuses the PSE (list-of-AIDs fallback) and answers 61xx / 6Cxx."""
    flow = Flow(EmvCard(get_profile("cb")))
    assert flow.send(PSE)[1] == 0x6A82
    data, sw = flow.send(select("A0000000421010"))
    assert (data, sw >> 8) == (b"", 0x61)
    fci, sw = flow.send(bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF]))
    assert sw == 0x9000 and tlv.decode(fci)[0].tag == 0x6F
    assert flow.send(bytes.fromhex("00B2010C00"))[1] >> 8 == 0x6C


async def test_t0_card_through_the_reader() -> None:
    """Through a reader session the T=0 answers are resolved: the kernel sees 9000 and data."""
    reader = in_process_reader("cb")
    session = await reader.connect(await reader.wait_for_card())
    response = await session.transmit(select("A0000000421010"))
    assert response.ok and response.data[0] == 0x6F
    assert reader.sent[1][:2] == b"\x00\xc0"


def test_partial_selection_and_next_occurrence() -> None:
    """A partial AID selects the first match; P2=02 selects the next, then 6A82."""
    flow = Flow(EmvCard(get_profile("domestic-visa")))
    fci, sw = flow.send(select("D504000001"))
    assert sw == 0x9000 and bytes.fromhex("D5040000011010") in fci
    assert flow.send(bytes.fromhex("00A4040205D50400000100"))[1] == 0x6A82
    assert flow.send(select("A000000099"))[1] == 0x6A82


def test_blocked_application() -> None:
    """A blocked application answers SELECT with its FCI and 6283, and refuses GPO."""
    flow = Flow(EmvCard(get_profile("visa-blocked")))
    fci, sw = flow.send(select("A0000000031010"))
    assert sw == 0x6283 and fci[0] == 0x6F
    assert flow.send(gpo(b""))[1] == 0x6985


def test_expired_card_dates() -> None:
    """The expired profile's 5F24 is in the past while its certificates stay valid."""
    data = Flow(EmvCard(get_profile("visa-expired"))).start("A0000000031010")
    assert data[0x5F24] == bytes.fromhex("231130")


@pytest.mark.parametrize(
    ("profile",          "aid",            "gpo_tag", "oda_tag"),
    [
        ("visa-credit",      "A0000000031010", 0x80,      0x9F46),
        ("mastercard-debit", "A0000000041010", 0x77,      0x9F46),
        ("cb",               "A0000000421010", 0x80,      0x93),
        ("domestic-visa",    "D5040000011010", 0x77,      0x9F46),
    ],
)
def test_gpo_formats_and_records(profile: str, aid: str, gpo_tag: int, oda_tag: int) -> None:
    """GPO answers in the profile's format; the AFL spans several SFIs; ODA objects are there."""
    card = EmvCard(get_profile(profile))
    card.t0 = False
    flow = Flow(card)
    fci, _ = flow.send(select(aid))
    data, _ = flow.send(gpo(dol.build_dol(tlv.flatten(tlv.decode(fci)).get(0x9F38, b""), TERMINAL)))
    assert data[0] == gpo_tag
    flow = Flow(card)
    values = flow.start(aid)
    assert oda_tag in values and 0x8F in values and 0xDF7F in values
    assert len({record for record in flow.records}) >= 4


def test_sda_signature_verifies() -> None:
    """The CB card's SSAD (93) recovers with the issuer key and hashes the static data."""
    import hashlib

    from tests.simulators.card.terminal_side import recover_issuer_key, rsa_recover

    card = EmvCard(get_profile("cb"))
    card.t0 = False
    flow = Flow(card)
    values = flow.start("A0000000421010")
    modulus, exponent = recover_issuer_key("A000000042", values)
    block = rsa_recover(modulus, exponent, values[0x93])
    assert block[:2] == b"\x6a\x03"
    assert block[-21:-1] == hashlib.sha1(block[1:-21] + flow.static).digest()  # noqa: S324


def test_sfi11_record_is_hashed_whole() -> None:
    """The domestic card's SFI 11 ODA record enters the ICC certificate hash template and all."""
    flow = Flow(EmvCard(get_profile("domestic-visa")))
    values = flow.start("D5040000011010")
    assert 0x9F0D in values and 0xDF7E in values
    recover_icc_key("D504000001", values, flow.static)
    sfi2, sfi11 = flow.records[1], flow.records[2]
    assert flow.static == tlv.decode(sfi2)[0].value + sfi11 + flow.aip
    template_stripped = tlv.decode(sfi2)[0].value + tlv.decode(sfi11)[0].value + flow.aip
    with pytest.raises(AssertionError):
        recover_icc_key("D504000001", values, template_stripped)


def test_dda_internal_authenticate() -> None:
    """INTERNAL AUTHENTICATE signs the DDOL data; the signature checks through the CA chain."""
    flow = Flow(EmvCard(get_profile("visa-credit")))
    values = flow.start("A0000000031010")
    icc_mod, icc_exp = recover_icc_key("A000000003", values, flow.static)
    ddol_data = dol.build_dol(values[0x9F49], TERMINAL)
    data, sw = flow.send(bytes([0, 0x88, 0, 0, len(ddol_data)]) + ddol_data + b"\x00")
    assert sw == 0x9000 and data[0] == 0x80
    dynamic = check_sdad(icc_mod, icc_exp, tlv.decode(data)[0].value, ddol_data)
    assert dynamic[0] == 8 and len(dynamic) == 9


def test_tampered_sdad_fails_the_check() -> None:
    """With the tamper-sdad fault the DDA signature no longer verifies."""
    flow = Flow(EmvCard(get_profile("visa-credit").with_faults("tamper-sdad")))
    values = flow.start("A0000000031010")
    icc_mod, icc_exp = recover_icc_key("A000000003", values, flow.static)
    ddol_data = dol.build_dol(values[0x9F49], TERMINAL)
    data, _ = flow.send(bytes([0, 0x88, 0, 0, len(ddol_data)]) + ddol_data + b"\x00")
    with pytest.raises(AssertionError):
        check_sdad(icc_mod, icc_exp, tlv.decode(data)[0].value, ddol_data)


def test_tampered_issuer_certificate_fails() -> None:
    """With the tamper-issuer-cert fault the issuer certificate does not recover correctly."""
    flow = Flow(EmvCard(get_profile("visa-credit").with_faults("tamper-issuer-cert")))
    values = flow.start("A0000000031010")
    with pytest.raises(AssertionError):
        recover_icc_key("A000000003", values, flow.static)


def _online_first_ac(profile: str, aid: str) -> tuple[Flow, dict[int, bytes], bytes, bytes]:
    flow = Flow(EmvCard(get_profile(profile)))
    values = flow.start(aid)
    cdol1 = dol.build_dol(values[0x8C], TERMINAL)
    data, sw = flow.send(generate_ac(AC_ARQC, cdol1))
    assert sw == 0x9000
    (template,) = tlv.decode(data)
    if template.tag == 0x80:
        cid, atc, ac, iad = (
            template.value[0],
            template.value[1:3],
            template.value[3:11],
            template.value[11:],
        )
    else:
        flat = tlv.flatten([template])
        cid, atc, ac, iad = flat[0x9F27][0], flat[0x9F36], flat[0x9F26], flat[0x9F10]
    assert cid == AC_ARQC
    app = flow.card.apps[0].personalised.app
    tags = _ac_tags(TERMINAL, flow.aip, atc, iad)
    issuer.verify_arqc(issuer.issuer_master_keys(app.issuer), app.pan, app.psn, tags, ac)
    return flow, values, atc, ac


def _second_ac(flow: Flow, values: dict[int, bytes], extra: dict[int, bytes]) -> int:
    cdol2 = dol.build_dol(values[0x8D], TERMINAL | extra)
    data, sw = flow.send(generate_ac(AC_TC, cdol2))
    assert sw == 0x9000
    (template,) = tlv.decode(data)
    if template.tag == 0x80:
        return template.value[0]
    return tlv.flatten([template])[0x9F27][0]


@pytest.mark.parametrize(
    ("profile",         "aid",            "method"),
    [
        ("visa-credit",   "A0000000031010", 1),
        ("domestic-visa", "D5040000011010", 2),
    ],
)
def test_online_approval_with_arpc_in_second_generate_ac(profile: str, aid: str, method: int) -> None:
    """ARQC verifies at the issuer; the issuer's ARPC in CDOL2 (tag 91) turns into a TC."""
    flow, values, atc, arqc = _online_first_ac(profile, aid)
    app = flow.card.apps[0].personalised.app
    imk = issuer.issuer_master_keys(app.issuer)
    if method == 1:
        tag_91 = issuer.arpc_method_1(imk, app.pan, app.psn, atc, arqc, b"00")
    else:
        tag_91 = issuer.arpc_method_2(imk, app.pan, app.psn, atc, arqc, bytes.fromhex("00800000"))
    assert _second_ac(flow, values, {0x8A: b"00", 0x91: tag_91}) == AC_TC


def test_wrong_arpc_gives_aac() -> None:
    """An ARPC that does not verify makes the card decline (AAC) and flag the CVR."""
    flow, values, _atc, _arqc = _online_first_ac("visa-credit", "A0000000031010")
    assert _second_ac(flow, values, {0x8A: b"00", 0x91: bytes(range(1, 11))}) == AC_AAC


def test_external_authenticate_then_tc() -> None:
    """EXTERNAL AUTHENTICATE checks the ARPC (9000 / 6300); only once per transaction."""
    flow, values, atc, arqc = _online_first_ac("mastercard-debit", "A0000000041010")
    app = flow.card.apps[0].personalised.app
    imk = issuer.issuer_master_keys(app.issuer)
    tag_91 = issuer.arpc_method_1(imk, app.pan, app.psn, atc, arqc, b"00")
    assert flow.send(bytes([0, 0x82, 0, 0, len(tag_91)]) + tag_91)[1] == 0x9000
    assert flow.send(bytes([0, 0x82, 0, 0, len(tag_91)]) + tag_91)[1] == 0x6985
    assert _second_ac(flow, values, {0x8A: b"00"}) == AC_TC


def test_external_authenticate_failure() -> None:
    """A bad ARPC in EXTERNAL AUTHENTICATE answers 6300 and the second AC is an AAC."""
    flow, values, _atc, _arqc = _online_first_ac("mastercard-debit", "A0000000041010")
    assert flow.send(bytes.fromhex("008200000A") + bytes(10))[1] == 0x6300
    assert _second_ac(flow, values, {0x8A: b"00"}) == AC_AAC


def test_unable_to_go_online_card_decides() -> None:
    """With ARC Y3 (unable to go online) a small amount gets a TC, a large one an AAC."""
    flow, values, _atc, _arqc = _online_first_ac("visa-credit", "A0000000031010")
    assert _second_ac(flow, values, {0x8A: b"Y3"}) == AC_TC
    flow, values, _atc, _arqc = _online_first_ac("visa-credit", "A0000000031010")
    big = {0x8A: b"Y3", 0x9F02: bytes.fromhex("000000999900")}
    assert _second_ac(flow, values, big) == AC_AAC


def test_card_risk_management_on_first_ac() -> None:
    """A TC request under the card's offline limit gets a TC; above it an ARQC; AAC stays AAC."""
    for amount, requested, expected in [
        ("000000002500", AC_TC, AC_TC),
        ("000000500000", AC_TC, AC_ARQC),
        ("000000002500", AC_AAC, AC_AAC),
    ]:
        flow = Flow(EmvCard(get_profile("visa-credit")))
        values = flow.start("A0000000031010")
        cdol1 = dol.build_dol(values[0x8C], TERMINAL | {0x9F02: bytes.fromhex(amount)})
        data, _ = flow.send(generate_ac(requested, cdol1))
        assert tlv.decode(data)[0].value[0] == expected


def test_cda_signature_and_transaction_hash() -> None:
    """With CDA the AC travels in 9F4B; the transaction data hash covers PDOL, CDOL1, response."""
    import hashlib

    flow = Flow(EmvCard(get_profile("mastercard-debit")))
    values = flow.start("A0000000041010")
    icc_mod, icc_exp = recover_icc_key("A000000004", values, flow.static)
    cdol1 = dol.build_dol(values[0x8C], TERMINAL)
    data, sw = flow.send(generate_ac(AC_ARQC | 0x10, cdol1))
    assert sw == 0x9000
    (template,) = tlv.decode(data)
    children = template.children
    assert [c.tag for c in children] == [0x9F27, 0x9F36, 0x9F4B, 0x9F10]
    dynamic = check_sdad(icc_mod, icc_exp, children[2].value, TERMINAL[0x9F37])
    number_length = dynamic[0]
    cid = dynamic[1 + number_length]
    ac = dynamic[2 + number_length : 10 + number_length]
    tdhc = dynamic[10 + number_length : 30 + number_length]
    returned = b"".join(c.encode() for c in children if c.tag != 0x9F4B)
    assert cid == AC_ARQC
    assert tdhc == hashlib.sha1(flow.pdol_data + cdol1 + returned).digest()  # noqa: S324
    app = flow.card.apps[0].personalised.app
    tags = _ac_tags(TERMINAL, flow.aip, children[1].value, children[3].value)
    issuer.verify_arqc(issuer.issuer_master_keys(app.issuer), app.pan, app.psn, tags, ac)


def test_qvsdc_offline_with_fdda() -> None:
    """Contactless: PPSE lists Visa; GPO returns a TC and an fDDA signature that verifies."""
    card = EmvCard(get_profile("visa-credit"), Interface.CONTACTLESS)
    flow = Flow(card)
    fci, sw = flow.send(PPSE)
    assert sw == 0x9000 and bytes.fromhex("A0000000031010") in fci
    assert flow.send(PSE)[1] == 0x6A82
    values = flow.start("A0000000031010")
    assert values[0x9F27] == bytes([AC_TC])
    icc_mod, icc_exp = recover_icc_key("A000000003", values, flow.static)
    terminal = TERMINAL[0x9F37] + TERMINAL[0x9F02] + TERMINAL[0x5F2A] + values[0x9F69]
    dynamic = check_sdad(icc_mod, icc_exp, values[0x9F4B], terminal)
    assert dynamic == b"\x04" + values[0x9F69][1:5]
    app = card.apps[0].personalised.app
    tags = _ac_tags(TERMINAL, values[0x82], values[0x9F36], values[0x9F10])
    issuer.verify_arqc(issuer.issuer_master_keys("visa"), app.pan, app.psn, tags, values[0x9F26])


def test_qvsdc_online_above_the_limit() -> None:
    """Contactless above the card's offline limit: ARQC, no fDDA signature, online PIN asked."""
    flow = Flow(EmvCard(get_profile("visa-credit"), Interface.CONTACTLESS))
    values = flow.start("A0000000031010", TERMINAL | {0x9F02: bytes.fromhex("000000030000")})
    assert values[0x9F27] == bytes([AC_ARQC]) and 0x9F4B not in values
    assert values[0x9F6C][0] & 0x80


def test_offline_pin_and_try_counter() -> None:
    """VERIFY: a wrong PIN decrements the counter (63Cx), the right one resets it; 0 blocks."""
    card = EmvCard(get_profile("cb"))
    card.t0 = False
    flow = Flow(card)
    flow.start("A0000000421010")
    wrong = bytes.fromhex("0020008008249999FFFFFFFFFF")
    right = bytes.fromhex("0020008008241234FFFFFFFFFF")
    assert flow.send(wrong)[1] == 0x63C2
    assert flow.send(bytes.fromhex("80CA9F1700"))[0] == bytes.fromhex("9F170102")
    assert flow.send(right)[1] == 0x9000
    assert flow.send(bytes.fromhex("80CA9F1700"))[0] == bytes.fromhex("9F170103")
    for remaining in (2, 1, 0):
        assert flow.send(wrong)[1] == 0x63C0 | remaining
    assert flow.send(right)[1] == 0x6983


def test_atc_increments_per_transaction() -> None:
    """The ATC goes up by one at each GPO and is readable with GET DATA."""
    card = EmvCard(get_profile("visa-credit"))
    Flow(card).start("A0000000031010")
    flow = Flow(card)
    flow.start("A0000000031010")
    assert flow.send(bytes.fromhex("80CA9F3600"))[0] == bytes.fromhex("9F36020002")


def test_issuer_script_blocks_the_application() -> None:
    """A MACed APPLICATION BLOCK script is accepted; a bad MAC is 6988; the next SELECT is 6283."""
    flow, _values, atc, arqc = _online_first_ac("visa-credit", "A0000000031010")
    app = flow.card.apps[0].personalised.app
    imk = issuer.issuer_master_keys(app.issuer)
    command = issuer.script_command(imk, app.pan, app.psn, atc, arqc, bytes.fromhex("841E0000"))
    assert flow.send(command[:-1] + bytes([command[-1] ^ 1]))[1] == 0x6988
    assert flow.send(command)[1] == 0x9000
    assert flow.send(select("A0000000031010"))[1] == 0x6283


async def test_card_removed_mid_transaction() -> None:
    """Pulling the simulated card out makes the open session raise CardRemovedError."""
    reader = in_process_reader("visa-credit")
    session = await reader.connect(await reader.wait_for_card())
    assert (await session.transmit(PSE)).ok
    reader.remove_card()
    with pytest.raises(CardRemovedError):
        await session.transmit(select("A0000000031010"))
    assert not reader.card.powered  # type: ignore[union-attr]


def test_no_card_data_in_reprs() -> None:
    """Profiles, personalised applications and cards never show the PAN or PIN in a repr."""
    for profile in PROFILES.values():
        card = EmvCard(profile)
        text = repr(profile) + repr(card.apps) + repr(card)
        for app in profile.apps:
            assert app.pan not in text and app.pan[-10:] not in text
            assert f"pin='{app.pin}'" not in text


def test_cda_on_second_generate_ac() -> None:
    """A TC from the second GENERATE AC with CDA: the hash also covers the CDOL2 data."""
    import hashlib

    flow, values, atc, arqc = _online_first_ac("mastercard-debit", "A0000000041010")
    app = flow.card.apps[0].personalised.app
    imk = issuer.issuer_master_keys(app.issuer)
    tag_91 = issuer.arpc_method_1(imk, app.pan, app.psn, atc, arqc, b"00")
    assert flow.send(bytes([0, 0x82, 0, 0, len(tag_91)]) + tag_91)[1] == 0x9000
    cdol1 = dol.build_dol(values[0x8C], TERMINAL)
    cdol2 = dol.build_dol(values[0x8D], TERMINAL | {0x8A: b"00"})
    data, sw = flow.send(generate_ac(AC_TC | 0x10, cdol2))
    assert sw == 0x9000
    children = tlv.decode(data)[0].children
    icc_mod, icc_exp = recover_icc_key("A000000004", values, flow.static)
    dynamic = check_sdad(icc_mod, icc_exp, children[2].value, TERMINAL[0x9F37])
    returned = b"".join(c.encode() for c in children if c.tag != 0x9F4B)
    assert dynamic[9] == AC_TC
    expected = hashlib.sha1(flow.pdol_data + cdol1 + cdol2 + returned).digest()  # noqa: S324
    assert dynamic[18:38] == expected


def test_bancontact_never_approves_offline() -> None:
    """The Maestro debit card answers a TC request with an ARQC, and signs it with CDA."""
    flow = Flow(EmvCard(get_profile("bancontact-maestro")))
    values = flow.start("A0000000043060")
    assert values[0x8E][8:] == bytes.fromhex("0200")  # online PIN, always
    data, sw = flow.send(generate_ac(AC_TC | 0x10, dol.build_dol(values[0x8C], TERMINAL)))
    children = tlv.decode(data)[0].children
    assert sw == 0x9000 and children[0].value == bytes([AC_ARQC])
    assert [c.tag for c in children] == [0x9F27, 0x9F36, 0x9F4B, 0x9F10]


def test_no_card_data_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    """A full exchange with every profile logs nothing that contains a PAN."""
    import logging

    caplog.set_level(logging.DEBUG)
    for name, profile in PROFILES.items():
        aid = profile.apps[0].aid
        flow = Flow(EmvCard(profile))
        flow.card.t0 = False
        if profile.apps[0].blocked:
            assert flow.send(select(aid))[1] == 0x6283
            continue
        if getattr(profile, "select_6a81", False):  # the card blocked at selection
            assert flow.send(select(aid))[1] == 0x6A81
            continue
        values = flow.start(aid)
        flow.send(generate_ac(AC_ARQC, dol.build_dol(values[0x8C], TERMINAL)))
        assert name
    text = caplog.text
    for profile in PROFILES.values():
        for app in profile.apps:
            assert app.pan not in text and app.pan[:6] + app.pan[-4:] not in text
