"""Offline data authentication: SDA, DDA, CDA and fDDA (EMV 4.4 Book 2 §5–§6, Book 3 §10.3).

Certificates and signatures are recovered with the RSA *recovery function* of Book 2
§A2.1: ``X = S^e mod n`` and the recovered data carries its own header ``6A``, trailer
``BC`` and a SHA-1 hash (Book 2 §A2.1, Annex B2.1). That is raw RSA without padding, which
:mod:`cryptography` deliberately does not expose, so it is written here with ``pow``.

Checks made (Book 2 §5.3, §6.3, §6.4, Tables 6, 7, 13, 14, 17):

- issuer certificate (90): length = CA modulus, header/trailer, format ``02``, hash over
  format…key + remainder (92) + exponent (9F32), issuer identifier = leftmost 3–8 PAN
  digits, expiry (last day of MMYY) not before today, not revoked, hash and key algorithm
  ``01``;
- ICC certificate (9F46): length = issuer modulus, format ``04``, hash also covering the
  static data to be authenticated, PAN in certificate = card PAN, expiry, algorithms;
- SDA signed static data (93): format ``03``, hash over the static data; the Data
  Authentication Code (9F45) is returned;
- dynamic signature (9F4B): format ``05``, hash over the signed data and the terminal
  dynamic data (DDA: the DDOL data; CDA: the unpredictable number; fDDA version 01: the
  unpredictable number, amount authorised, currency code and card authentication related
  data 9F69); for CDA the recovered CID must equal 9F27 and the transaction data hash code
  must equal SHA-1 of the PDOL data, the CDOL data and the response's other TLVs.

Certificate revocation (Book 2 §5.3 step 10, §6.3 step 10): an issuer certificate whose
serial number (recovered bytes 9–11) is among the CA key's ``revoked_serials`` — the
profile's ``crl.toml`` entries for that RID and index — fails, like any other check.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from terminal.emv.config import Capk
from terminal.emv.dates import certificate_expiry
from terminal.emv.errors import OdaError

__all__ = [
    "DynamicData",
    "RsaKey",
    "certificate_in_force",
    "recover",
    "recover_icc_key",
    "recover_issuer_key",
    "sha1",
    "verify_cda",
    "verify_dynamic_signature",
    "verify_sda",
]

_HEADER = 0x6A
_TRAILER = 0xBC
_SHA1 = 0x01
#: Shortest modulus accepted (512 bits): every certificate layout of Book 2 fits in it.
_MIN_MODULUS = 64
_RSA = 0x01


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()  # noqa: S324 - EMV ODA hashes are SHA-1 (Book 2 B2.1)


@dataclass(frozen=True, slots=True)
class RsaKey:
    modulus: bytes
    exponent: bytes

    @property
    def size(self) -> int:
        return len(self.modulus)


def recover(signed: bytes, key: RsaKey) -> bytes:
    """The recovery function of Book 2 §A2.1: ``S^e mod n`` as ``len(n)`` bytes."""
    if len(key.modulus) < _MIN_MODULUS:
        # The key may come from the card (issuer/ICC certificates): a modulus too short to
        # hold a certificate's fixed fields would make the checks below index past its end.
        raise OdaError(f"a public key of {len(key.modulus)} bytes is too short", step="key_size")
    if len(signed) != len(key.modulus):
        raise OdaError(
            f"signed data is {len(signed)} bytes, the key modulus {len(key.modulus)}",
            step="length",
        )
    n = int.from_bytes(key.modulus, "big")
    s = int.from_bytes(signed, "big")
    if s >= n:
        raise OdaError("signed data is not smaller than the modulus", step="recover")
    x = pow(s, int.from_bytes(key.exponent, "big"), n)
    recovered = x.to_bytes(len(key.modulus), "big")
    if recovered[0] != _HEADER or recovered[-1] != _TRAILER:
        raise OdaError("recovered data has a wrong header or trailer", step="frame")
    return recovered


def certificate_in_force(mmyy: bytes, today: date) -> bool:
    """Whether a certificate expiring MMYY is still valid ``today`` (Book 2 §5.3, §6.4).

    The two-digit year follows the 00–49 / 50–99 window of the application dates, so
    ``1299`` is December 1999, long expired; a malformed MMYY is not in force.
    """
    last = certificate_expiry(mmyy)
    return last is not None and last >= today


def _key_from(leftmost: bytes, key_len: int, remainder: bytes | None, step: str) -> bytes:
    if key_len < _MIN_MODULUS:
        # Refused here, not only when the key is used: a key recovered for CDA or for the
        # offline PIN is handed on (to the PIN pad too) before it verifies any signature.
        raise OdaError(f"a public key of {key_len} bytes is too short", step=step + "_key_size")
    if key_len <= len(leftmost):
        return leftmost[:key_len]
    if remainder is None:
        raise OdaError("the public key remainder is missing", step=step + "_remainder")
    key = leftmost + remainder
    if len(key) != key_len:
        raise OdaError("the public key remainder has the wrong length", step=step + "_remainder")
    return key


def recover_issuer_key(
    capk: Capk,
    certificate: bytes,
    remainder: bytes | None,
    exponent: bytes,
    pan: str,
    today: date,
) -> RsaKey:
    """The issuer public key from its certificate (Book 2 §5.3 / §6.3, Table 6/13)."""
    if capk.expiry is not None and capk.expiry < today:
        raise OdaError("the CA public key has expired", step="capk_expired")
    ca = RsaKey(capk.modulus, capk.exponent)
    rec = recover(certificate, ca)
    n_ca = ca.size
    if rec[1] != 0x02:
        raise OdaError("issuer certificate format is not 02", step="issuer_format")
    body = rec[1 : n_ca - 21]
    digest = rec[n_ca - 21 : n_ca - 1]
    if sha1(body + (remainder or b"") + exponent) != digest:
        raise OdaError("issuer certificate hash does not match", step="issuer_hash")
    issuer_id = rec[2:6].hex().upper().rstrip("F")
    if not 3 <= len(issuer_id) <= 8 or not pan.startswith(issuer_id):
        raise OdaError("issuer identifier does not match the PAN", step="issuer_id")
    if not certificate_in_force(rec[6:8], today):
        raise OdaError("issuer certificate has expired", step="issuer_expired")
    # Step 10: RID ‖ CA index ‖ certificate serial checked against the revocation list.
    if rec[8:11] in capk.revoked_serials:
        raise OdaError(
            "issuer certificate is revoked (its RID, CA index and serial are on the CRL)",
            step="issuer_revoked",
        )
    if rec[11] != _SHA1 or rec[12] != _RSA:
        raise OdaError("issuer certificate algorithm is not supported", step="issuer_algorithm")
    key_len, exp_len = rec[13], rec[14]
    if exp_len != len(exponent):
        raise OdaError("issuer exponent length does not match 9F32", step="issuer_exponent")
    modulus = _key_from(rec[15 : n_ca - 21], key_len, remainder, "issuer")
    return RsaKey(modulus, exponent)


def recover_icc_key(
    issuer: RsaKey,
    certificate: bytes,
    remainder: bytes | None,
    exponent: bytes,
    static_data: bytes,
    pan: str,
    today: date,
) -> RsaKey:
    """The ICC public key from its certificate (Book 2 §6.4, Table 14)."""
    rec = recover(certificate, issuer)
    n_i = issuer.size
    if rec[1] != 0x04:
        raise OdaError("ICC certificate format is not 04", step="icc_format")
    body = rec[1 : n_i - 21]
    digest = rec[n_i - 21 : n_i - 1]
    if sha1(body + (remainder or b"") + exponent + static_data) != digest:
        raise OdaError("ICC certificate hash does not match", step="icc_hash")
    if rec[2:12].hex().upper().rstrip("F") != pan:
        raise OdaError("PAN in the ICC certificate does not match the card", step="icc_pan")
    if not certificate_in_force(rec[12:14], today):
        raise OdaError("ICC certificate has expired", step="icc_expired")
    if rec[17] != _SHA1 or rec[18] != _RSA:
        raise OdaError("ICC certificate algorithm is not supported", step="icc_algorithm")
    key_len, exp_len = rec[19], rec[20]
    if exp_len != len(exponent):
        raise OdaError("ICC exponent length does not match 9F47", step="icc_exponent")
    modulus = _key_from(rec[21 : n_i - 21], key_len, remainder, "icc")
    return RsaKey(modulus, exponent)


def verify_sda(issuer: RsaKey, signed_static: bytes, static_data: bytes) -> bytes:
    """Verify Signed Static Application Data (93); return the Data Authentication Code."""
    rec = recover(signed_static, issuer)
    n_i = issuer.size
    if rec[1] != 0x03:
        raise OdaError("signed static data format is not 03", step="sda_format")
    if rec[2] != _SHA1:
        raise OdaError("signed static data hash algorithm is not SHA-1", step="sda_algorithm")
    if sha1(rec[1 : n_i - 21] + static_data) != rec[n_i - 21 : n_i - 1]:
        raise OdaError("signed static data hash does not match", step="sda_hash")
    return rec[3:5]


@dataclass(frozen=True, slots=True)
class DynamicData:
    """The ICC dynamic data recovered from a dynamic signature (Book 2 Table 17/19)."""

    raw: bytes

    @property
    def icc_dynamic_number(self) -> bytes:
        length = self.raw[0] if self.raw else 0
        return self.raw[1 : 1 + length]


def verify_dynamic_signature(icc: RsaKey, sdad: bytes, terminal_data: bytes) -> DynamicData:
    """Verify Signed Dynamic Application Data (9F4B) over ``terminal_data`` (Book 2 §6.5)."""
    rec = recover(sdad, icc)
    n_ic = icc.size
    if rec[1] != 0x05:
        raise OdaError("signed dynamic data format is not 05", step="sdad_format")
    if rec[2] != _SHA1:
        raise OdaError("signed dynamic data hash algorithm is not SHA-1", step="sdad_algorithm")
    if sha1(rec[1 : n_ic - 21] + terminal_data) != rec[n_ic - 21 : n_ic - 1]:
        raise OdaError("signed dynamic data hash does not match", step="sdad_hash")
    length = rec[3]
    if 4 + length > n_ic - 21:
        raise OdaError("ICC dynamic data length overruns the signature", step="sdad_length")
    return DynamicData(rec[4 : 4 + length])


def verify_cda(
    icc: RsaKey,
    sdad: bytes,
    unpredictable_number: bytes,
    cid: bytes,
    transaction_data: bytes,
) -> bytes:
    """Verify a CDA signature (Book 2 §6.6.2); return the Application Cryptogram inside it.

    ``transaction_data`` is what the Transaction Data Hash Code covers: the PDOL values, the
    CDOL1 (and CDOL2) values, and the GENERATE AC response's TLVs other than 9F4B.
    """
    dynamic = verify_dynamic_signature(icc, sdad, unpredictable_number)
    raw = dynamic.raw
    length = raw[0] if raw else 0
    rest = raw[1 + length :]
    if len(rest) < 1 + 8 + 20:
        raise OdaError("CDA dynamic data is too short", step="cda_length")
    if rest[:1] != cid:
        raise OdaError("CID in the CDA signature does not match 9F27", step="cda_cid")
    if sha1(transaction_data) != rest[9:29]:
        raise OdaError("transaction data hash code does not match", step="cda_hash")
    return rest[1:9]
