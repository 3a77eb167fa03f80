"""The issuer's side of the simulated cards' symmetric cryptography — stable API for the PSP.

The card simulator and an issuer host (the PSP simulator) share these functions, so an
ARQC the card computed verifies here and an ARPC made here verifies on the card. Scheme:
EMV Common Session Key ("CSK"), as EMV 4.4 Book 2 Annex A describes it, with pyemv:

* ICC master keys from the issuer master keys by **Option A** (Book 2 A1.4.1,
  :func:`pyemv.kd.derive_icc_mk_a`): PAN ‖ PSN, rightmost 16 digits;
* AC session key by the common session key derivation (Book 2 A1.3.1,
  :func:`pyemv.kd.derive_common_sk`) with R = ATC ‖ 00 00 00 00 00 00;
* application cryptogram (Book 2 §8.1.1, A1.2, ISO/IEC 9797-1 MAC algorithm 3, padding
  method 2, :func:`pyemv.ac.generate_ac`) over :data:`AC_DATA_TAGS` in that order — the
  Book 2 Table 26 recommended minimum set followed by the whole issuer application data
  (9F10), whose CVR tells the issuer what the card decided and why;
* ARPC method 1 (8 bytes over ARQC ⊕ ARC, Book 2 §8.2.1) or method 2 (4 bytes over
  ARQC ‖ CSU ‖ proprietary data, §8.2.2), with the same session key;
* issuer script MACs (Book 2 §9.2, :func:`pyemv.sm.generate_command_mac`): session key
  ``derive_common_sk(MK-SMI, ARQC)``, 4-byte MAC over header ‖ ATC ‖ ARQC ‖ data.

Usage by an issuer host::

    from simulators.card import issuer
    keys = issuer.issuer_master_keys("visa")          # the test issuer's IMKs
    issuer.verify_arqc(keys, pan, psn, tags, arqc)   # raises CryptogramMismatchError
    tag_91 = issuer.arpc_method_1(keys, pan, psn, tags[0x9F36], arqc, b"00")

``tags`` maps tag numbers to values as the terminal sends them in the authorisation
request (DE 55): 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 82 9F36 9F10. Clear PANs go in as
arguments only; nothing here logs them or puts them in an exception.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyemv import ac as _ac
from pyemv import kd as _kd
from pyemv import sm as _sm
from pyemv import tools as _tools

from etika_errors import EtikaError
from simulators.card.pki import DEFAULT_SEED
from terminal.emv import tlv

__all__ = [
    "AC_DATA_TAGS",
    "ISSUERS",
    "CardKeys",
    "CryptogramMismatchError",
    "IssuerMasterKeys",
    "arpc_method_1",
    "arpc_method_2",
    "cryptogram_data",
    "derive_card_keys",
    "generate_ac",
    "issuer_master_keys",
    "issuer_script",
    "script_command",
    "script_mac",
    "session_key",
    "verify_arpc_method_1",
    "verify_arpc_method_2",
    "verify_arqc",
]

#: The data the cryptogram covers, in order (Book 2 Table 26, then 9F10).
AC_DATA_TAGS: tuple[int, ...] = (
    0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37, 0x82, 0x9F36, 0x9F10,
)

#: The simulated issuers; each has its own master keys derived from the public test seed.
ISSUERS: tuple[str, ...] = ("visa", "mastercard", "cb", "domestic", "bancontact")


class CryptogramMismatchError(EtikaError):
    """A cryptogram (ARQC/TC/AAC or ARPC) did not verify: decline, it is not genuine."""


@dataclass(frozen=True)
class IssuerMasterKeys:
    """The issuer's three double-length TDES master keys (AC, script integrity, confidentiality)."""

    ac: bytes
    smi: bytes
    smc: bytes

    def __repr__(self) -> str:  # never print key material, only check values
        kcv = ", ".join(
            f"{name}_kcv={_tools.key_check_digits(getattr(self, name), 3).hex().upper()}"
            for name in ("ac", "smi", "smc")
        )
        return f"IssuerMasterKeys({kcv})"


@dataclass(frozen=True)
class CardKeys:
    """The ICC master keys personalised on one card (derived from PAN and PSN)."""

    ac: bytes
    smi: bytes
    smc: bytes

    def __repr__(self) -> str:
        return "CardKeys(<secret>)"


def _des_key(material: bytes) -> bytes:
    return _tools.adjust_key_parity(material[:16])


def issuer_master_keys(issuer: str, seed: bytes = DEFAULT_SEED) -> IssuerMasterKeys:
    """The test master keys of ``issuer`` (one of :data:`ISSUERS`), the same on every machine."""
    if issuer not in ISSUERS:
        raise ValueError(f"unknown test issuer {issuer!r}; known: {', '.join(ISSUERS)}")

    def key(usage: str) -> bytes:
        return _des_key(hmac.new(seed, f"imk/{issuer}/{usage}".encode(), hashlib.sha256).digest())

    return IssuerMasterKeys(ac=key("ac"), smi=key("smi"), smc=key("smc"))


def _psn(psn: str | int) -> str:
    return f"{int(psn):02d}"


def derive_card_keys(imk: IssuerMasterKeys, pan: str, psn: str | int) -> CardKeys:
    """ICC master keys for the card with ``pan``/``psn`` (Option A, Book 2 A1.4.1)."""
    return CardKeys(
        ac=_kd.derive_icc_mk_a(imk.ac, pan, _psn(psn)),
        smi=_kd.derive_icc_mk_a(imk.smi, pan, _psn(psn)),
        smc=_kd.derive_icc_mk_a(imk.smc, pan, _psn(psn)),
    )


def session_key(card_master_key: bytes, atc: bytes) -> bytes:
    """Common session key for the AC (Book 2 A1.3.1): R = ATC ‖ 00 00 00 00 00 00."""
    if len(atc) != 2:
        raise ValueError("the ATC (9F36) is 2 bytes")
    return _kd.derive_common_sk(card_master_key, atc + bytes(6))


def cryptogram_data(tags: Mapping[int, bytes]) -> bytes:
    """The AC input: the values of :data:`AC_DATA_TAGS` in order (all must be present)."""
    missing = [f"{tag:X}" for tag in AC_DATA_TAGS if tag not in tags]
    if missing:
        raise ValueError(f"cryptogram data lacks tags {', '.join(missing)}")
    return b"".join(tags[tag] for tag in AC_DATA_TAGS)


def generate_ac(card_keys: CardKeys, tags: Mapping[int, bytes]) -> bytes:
    """The 8-byte application cryptogram the card computes (ARQC, TC and AAC alike)."""
    return _ac.generate_ac(
        session_key(card_keys.ac, tags[0x9F36]), cryptogram_data(tags), _ac.PaddingType.EMV
    )


def verify_arqc(
    imk: IssuerMasterKeys, pan: str, psn: str | int, tags: Mapping[int, bytes], cryptogram: bytes
) -> None:
    """Check an ARQC (or TC/AAC) from the authorisation data; raise if it does not match."""
    expected = generate_ac(derive_card_keys(imk, pan, psn), tags)
    if not hmac.compare_digest(expected, bytes(cryptogram)):
        raise CryptogramMismatchError(
            "the application cryptogram does not verify with the issuer keys",
            atc=tags.get(0x9F36, b"").hex().upper(),
        )


def arpc_method_1(
    imk: IssuerMasterKeys, pan: str, psn: str | int, atc: bytes, arqc: bytes, arc: bytes
) -> bytes:
    """Issuer authentication data (tag 91) by ARPC method 1: ARPC(8) ‖ ARC(2).

    ``arc`` is the 2-byte authorisation response code as sent in tag 8A (``b"00"``
    approved, ``b"05"`` declined...).
    """
    keys = derive_card_keys(imk, pan, psn)
    return _ac.generate_arpc_1(session_key(keys.ac, atc), arqc, arc) + arc


def arpc_method_2(
    imk: IssuerMasterKeys,
    pan: str,
    psn: str | int,
    atc: bytes,
    arqc: bytes,
    csu: bytes,
    proprietary: bytes = b"",
) -> bytes:
    """Issuer authentication data (tag 91) by ARPC method 2: ARPC(4) ‖ CSU(4) ‖ proprietary.

    The CSU (Book 2 §8.2.2) tells the card whether the issuer approved: byte 2 bit 8
    (``0x80``) set = approved (``00 80 00 00``).
    """
    keys = derive_card_keys(imk, pan, psn)
    arpc = _ac.generate_arpc_2(session_key(keys.ac, atc), arqc, csu, proprietary or None)
    return arpc + csu + proprietary


def verify_arpc_method_1(card_keys: CardKeys, atc: bytes, arqc: bytes, tag_91: bytes) -> bytes:
    """The card's check of method 1 issuer data; returns the ARC or raises."""
    if len(tag_91) != 10:
        raise CryptogramMismatchError("issuer authentication data for ARPC method 1 is 10 bytes")
    arpc, arc = tag_91[:8], tag_91[8:]
    expected = _ac.generate_arpc_1(session_key(card_keys.ac, atc), arqc, arc)
    if not hmac.compare_digest(expected, arpc):
        raise CryptogramMismatchError("the ARPC does not verify (method 1)")
    return arc


def verify_arpc_method_2(card_keys: CardKeys, atc: bytes, arqc: bytes, tag_91: bytes) -> bytes:
    """The card's check of method 2 issuer data; returns the CSU or raises."""
    if not 8 <= len(tag_91) <= 16:
        raise CryptogramMismatchError("issuer authentication data for ARPC method 2 is 8–16 bytes")
    arpc, csu, proprietary = tag_91[:4], tag_91[4:8], tag_91[8:]
    expected = _ac.generate_arpc_2(session_key(card_keys.ac, atc), arqc, csu, proprietary or None)
    if not hmac.compare_digest(expected, arpc):
        raise CryptogramMismatchError("the ARPC does not verify (method 2)")
    return csu


def _script_session_key(card_keys: CardKeys, arqc: bytes) -> bytes:
    return _kd.derive_common_sk(card_keys.smi, arqc)


def script_mac(card_keys: CardKeys, header: bytes, atc: bytes, arqc: bytes, data: bytes) -> bytes:
    """4-byte MAC over header ‖ ATC ‖ ARQC ‖ data (Book 2 §9.2.3), as card and issuer compute."""
    return _sm.generate_command_mac(
        _script_session_key(card_keys, arqc), header + atc + arqc + data, length=4
    )


def script_command(
    imk: IssuerMasterKeys,
    pan: str,
    psn: str | int,
    atc: bytes,
    arqc: bytes,
    cla_ins_p1_p2: bytes,
    data: bytes = b"",
) -> bytes:
    """A secured issuer script command: header ‖ Lc ‖ data ‖ MAC(4).

    E.g. APPLICATION BLOCK is ``script_command(..., bytes.fromhex("841E0000"))`` and
    APPLICATION UNBLOCK ``...("84180000")``; PIN UNBLOCK ``...("84240000")``; PUT DATA
    ``...("04DA9F58", b"\\x03")`` sets the lower consecutive offline limit.
    """
    if len(cla_ins_p1_p2) != 4:
        raise ValueError("a command header is CLA INS P1 P2, 4 bytes")
    header = cla_ins_p1_p2 + bytes([len(data) + 4])
    mac = script_mac(derive_card_keys(imk, pan, psn), header, atc, arqc, data)
    return header + data + mac


def issuer_script(template: int, commands: Sequence[bytes], script_id: bytes = b"") -> bytes:
    """An issuer script template (71: before, 72: after the second GENERATE AC).

    Book 3 §10.10: template ‖ [9F18 script identifier] ‖ 86 command ‖ 86 command ...
    """
    if template not in (0x71, 0x72):
        raise ValueError("issuer scripts are templates 71 or 72")
    body = tlv.encode(0x9F18, script_id) if script_id else b""
    body += b"".join(tlv.encode(0x86, command) for command in commands)
    return tlv.encode(template, body)
