"""Personalisation: an :class:`~simulators.card.profiles.AppProfile` made into card contents.

What an issuer's personalisation bureau does: derive the card's symmetric keys from the
issuer master keys, generate the ICC key pair, lay out the records in SFIs, compute the
static data to be authenticated over the records the AFL flags (Book 3 §10.3, Book 2
§5.4 / §6.4), and sign it (SSAD for SDA, the ICC certificate for DDA/CDA).

Record layout (every profile; both interfaces)::

    SFI 1 rec 1   57 track 2 equivalent, 5F20 name, DF7F (proprietary, unknown to kernels)
    SFI 2 rec 1   5A PAN, dates, PSN, country, service code, AUC, version, CDOL1/2, CVM list,
                  IACs, LCOL/UCOL, 9F4A (= 82: the AIP is static data too)   ← ODA record
    SFI 3 rec 1   8F CA index, 90 issuer certificate, 92 remainder, 9F32 exponent
    SFI 3 rec 2   9F46/9F47/9F48 ICC key and 9F49 DDOL (DDA/CDA), or 93 SSAD (SDA)
    SFI 11 rec 1  (``sfi11_oda`` profiles: domestic) the IACs and DF7E, an ODA record
                  hashed whole, template included (Book 3 §10.3)
    SFI 12 rec 1  (``proprietary_record`` profiles) issuer-proprietary bytes, not for ODA

The AIP differs between contact and contactless, and it is part of the static data, so
each interface gets its own ICC certificate / SSAD (as real dual-interface cards do).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from simulators.card import certs, issuer
from simulators.card.pki import RsaKey, rsa_key
from simulators.card.profiles import AppProfile, Interface, Oda
from terminal.emv import tlv

__all__ = [
    "CA_BITS",
    "ICC_BITS",
    "ISSUER_BITS",
    "Personalised",
    "ca_key",
    "issuer_cert_serial",
    "issuer_key",
    "personalise",
]

CA_BITS, ISSUER_BITS, ICC_BITS = 1408, 1152, 1024
PSE_SFI = 1
DAC = bytes.fromhex("DAC1")
#: qVSDC PDOL: TTQ, amounts, country, TVR, currency, date, type, UN.
QVSDC_PDOL = bytes.fromhex("9F66049F02069F03069F1A0295055F2A029A039C019F3704")


def ca_key(rid: str, index: int) -> RsaKey:
    """The test CA key for ``rid``/``index``: its public half is the profile's CAPK."""
    return rsa_key(f"ca/{rid}/{index:02X}", CA_BITS)


def issuer_cert_serial(app: AppProfile) -> bytes:
    """The serial number (3 bytes) of the application's issuer public key certificate."""
    return bytes.fromhex(app.issuer_cert_serial) or (
        hashlib.sha256(f"serial/{app.issuer}/{app.rid}".encode()).digest()[:3]
    )


def issuer_key(issuer_name: str, rid: str) -> RsaKey:
    return rsa_key(f"issuer/{issuer_name}/{rid}", ISSUER_BITS)


def _icc_key(app: AppProfile) -> RsaKey:
    # The label must not carry the PAN (an RsaKey's repr shows it): use a digest.
    card_id = hashlib.sha256(f"{app.aid}/{app.pan}/{app.psn}".encode()).hexdigest()[:16]
    return rsa_key(f"icc/{card_id}", ICC_BITS)


def _flip(data: bytes) -> bytes:
    """One bit flipped in the middle: a signature that no longer verifies."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def _n(value: int, length: int) -> bytes:
    """Numeric (n) format: BCD, right-justified, zero-padded (Book 3 §4.3)."""
    return bytes.fromhex(f"{value:0{length * 2}d}")


def track2(app: AppProfile) -> bytes:
    """Track 2 equivalent data (tag 57): PAN D YYMM service-code discretionary [F]."""
    digits = f"{app.pan}D{app.expiry[:4]}{app.service_code}0000000000"
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex(digits)


@dataclass(frozen=True)
class Personalised:
    """Everything one application holds on one interface."""

    app: AppProfile
    interface: Interface
    aid: bytes
    fci: bytes
    aip: bytes
    afl: bytes
    records: dict[tuple[int, int], bytes]
    static_data: bytes
    card_keys: issuer.CardKeys
    icc: RsaKey | None
    pdol: bytes

    @property
    def contactless(self) -> bool:
        return self.interface is Interface.CONTACTLESS

    @property
    def mchip(self) -> bool:
        """Contactless in M/Chip (EMV) mode: GENERATE AC as on contact (Book C-2)."""
        cl = self.app.contactless
        return self.contactless and cl is not None and cl.kernel == "mchip"

    def __repr__(self) -> str:  # records hold the PAN and track 2: never show them
        records = len(self.records)
        return f"Personalised({self.app.label!r}, {self.interface.value}, {records} records)"


def _fci(app: AppProfile, pdol: bytes) -> bytes:
    proprietary = tlv.encode(0x50, app.label.encode()) + tlv.encode(0x87, bytes([app.priority]))
    if pdol:
        proprietary += tlv.encode(0x9F38, pdol)
    proprietary += tlv.encode(0x5F2D, b"frenar")
    proprietary += tlv.encode(0x9F11, b"\x01")
    if app.preferred_name:
        proprietary += tlv.encode(0x9F12, app.preferred_name.encode())
    # Issuer discretionary data with a proprietary tag kernels do not know.
    proprietary += tlv.encode(0xBF0C, tlv.encode(0xDF62, b"\x01\x02"))
    body = tlv.encode(0x84, bytes.fromhex(app.aid)) + tlv.encode(0xA5, proprietary)
    return tlv.encode(0x6F, body)


@functools.lru_cache(maxsize=64)
def personalise(
    app: AppProfile, interface: Interface, faults: frozenset[str] = frozenset()
) -> Personalised:
    """The card contents of ``app`` on ``interface`` (cached: keys take a moment)."""
    contactless = interface is Interface.CONTACTLESS
    if contactless and app.contactless is None:
        raise ValueError(f"application {app.label} has no contactless interface")
    aip = app.contactless.aip if contactless and app.contactless else app.aip
    mchip = contactless and app.contactless is not None and app.contactless.kernel == "mchip"
    pdol = (app.contactless.pdol if mchip and app.contactless else QVSDC_PDOL) if contactless \
        else app.pdol
    oda = app.oda if mchip or not contactless else Oda.DDA

    record1 = tlv.encode(0x57, track2(app)) + tlv.encode(0x5F20, app.cardholder_name.encode())
    record1 += tlv.encode(0xDF7F, b"\x45\x54\x4b")  # proprietary, unknown to any kernel

    iacs = (
        tlv.encode(0x9F0D, app.iac_default)
        + tlv.encode(0x9F0E, app.iac_denial)
        + tlv.encode(0x9F0F, app.iac_online)
    )
    oda_body = b"".join(
        [
            tlv.encode(0x5A, bytes.fromhex(app.pan + ("F" if len(app.pan) % 2 else ""))),
            tlv.encode(0x5F24, bytes.fromhex(app.expiry)),
            tlv.encode(0x5F25, bytes.fromhex(app.effective)),
            tlv.encode(0x5F34, _n(app.psn, 1)),
            tlv.encode(0x5F28, _n(app.issuer_country, 2)),
            tlv.encode(0x5F30, _n(int(app.service_code), 2)),
            tlv.encode(0x9F07, app.auc),
            tlv.encode(0x9F08, app.app_version),
            tlv.encode(0x9F42, _n(app.currency, 2)),
            tlv.encode(0x8C, app.cdol1),
            tlv.encode(0x8D, app.cdol2),
            tlv.encode(0x8E, app.cvm_list),
            iacs if not app.sfi11_oda else b"",
            tlv.encode(0x9F14, bytes([app.lcol])),
            tlv.encode(0x9F23, bytes([app.ucol])),
            tlv.encode(0x9F4A, b"\x82") if oda is not Oda.NONE else b"",
        ]
    )
    records: dict[tuple[int, int], bytes] = {
        (1, 1): tlv.encode(0x70, record1),
        (2, 1): tlv.encode(0x70, oda_body),
    }
    static_data = oda_body
    if app.sfi11_oda:
        # Book 3 §10.3: a record from SFI 11–30 enters the static data whole (tag 70 and
        # length included), unlike SFI 1–10 records whose template is stripped.
        records[(11, 1)] = tlv.encode(0x70, iacs + tlv.encode(0xDF7E, b"\x01"))
        static_data += records[(11, 1)]
    static_data += aip if oda is not Oda.NONE else b""
    icc: RsaKey | None = None
    if oda is not Oda.NONE:
        ca = ca_key(app.rid, app.ca_index)
        issuer_rsa = issuer_key(app.issuer, app.rid)
        serial = issuer_cert_serial(app)
        icert = certs.issuer_certificate(ca, issuer_rsa, app.pan[:6], app.cert_expiry, serial)
        issuer_cert = icert.certificate
        if "tamper-issuer-cert" in faults:
            issuer_cert = _flip(issuer_cert)
        rec = tlv.encode(0x8F, bytes([app.ca_index])) + tlv.encode(0x90, issuer_cert)
        if icert.remainder:
            rec += tlv.encode(0x92, icert.remainder)
        rec += tlv.encode(0x9F32, icert.exponent)
        records[(3, 1)] = tlv.encode(0x70, rec)
        if oda is Oda.SDA:
            ssad = certs.signed_static_data(issuer_rsa, DAC, static_data)
            if "tamper-ssad" in faults:
                ssad = _flip(ssad)
            records[(3, 2)] = tlv.encode(0x70, tlv.encode(0x93, ssad))
        else:
            icc = _icc_key(app)
            ccert = certs.icc_certificate(
                issuer_rsa, icc, app.pan, app.cert_expiry, serial[::-1], static_data
            )
            icc_cert = ccert.certificate
            if "tamper-icc-cert" in faults:
                icc_cert = _flip(icc_cert)
            rec = tlv.encode(0x9F46, icc_cert) + tlv.encode(0x9F47, ccert.exponent)
            if ccert.remainder:
                rec += tlv.encode(0x9F48, ccert.remainder)
            if app.ddol and not contactless:
                rec += tlv.encode(0x9F49, app.ddol)
            records[(3, 2)] = tlv.encode(0x70, rec)

    # AFL (Book 3 §10.2): SFI<<3, first, last, number of records for ODA from the first.
    afl = bytes([1 << 3, 1, 1, 0, 2 << 3, 1, 1, 1])
    if (11, 1) in records:
        afl += bytes([11 << 3, 1, 1, 1])
    if (3, 1) in records:
        afl += bytes([3 << 3, 1, 2, 0])
    if app.proprietary_record:
        records[(12, 1)] = app.proprietary_record
        afl += bytes([12 << 3, 1, 1, 0])
    if contactless and not mchip:
        afl = afl[4:]  # qVSDC: track 2 comes in the GPO response, skip SFI 1

    keys = issuer.derive_card_keys(issuer.issuer_master_keys(app.issuer), app.pan, app.psn)
    return Personalised(
        app=app,
        interface=interface,
        aid=bytes.fromhex(app.aid),
        fci=_fci(app, pdol),
        aip=aip,
        afl=afl,
        records=records,
        static_data=static_data,
        card_keys=keys,
        icc=icc,
        pdol=pdol,
    )
