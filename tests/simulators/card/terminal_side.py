"""What a terminal does with the simulated card's ODA objects, written out for the tests.

Independent of the simulator's builders: it parses the recovered blocks field by field
as EMV 4.4 Book 2 Tables 6, 7, 14, 17 say, so a layout mistake in the builders fails.
"""

from __future__ import annotations

import hashlib

from simulators.card.personalise import ca_key
from terminal.emv import tlv


def rsa_recover(modulus: bytes, exponent: bytes, signed: bytes) -> bytes:
    n = int.from_bytes(modulus, "big")
    value = pow(int.from_bytes(signed, "big"), int.from_bytes(exponent, "big"), n)
    return value.to_bytes(len(modulus), "big")


def records_data(records: list[bytes]) -> dict[int, bytes]:
    values: dict[int, bytes] = {}
    for record in records:
        (template,) = tlv.decode(record)
        for child in template.children:
            values[child.tag] = child.value
    return values


def recover_issuer_key(rid: str, data: dict[int, bytes]) -> tuple[bytes, bytes]:
    """Book 2 §5.3: the issuer modulus and exponent from tag 90 (+92, 9F32)."""
    ca = ca_key(rid, data[0x8F][0])
    block = rsa_recover(ca.modulus, ca.exponent, data[0x90])
    assert block[0] == 0x6A and block[1] == 0x02 and block[-1] == 0xBC
    n_i = block[13]
    room = len(block) - 36
    leftmost = block[15 : 15 + room]
    remainder = data.get(0x92, b"")
    exponent = data[0x9F32]
    digest = hashlib.sha1(block[1 : 15 + room] + remainder + exponent).digest()  # noqa: S324
    assert block[15 + room : 15 + room + 20] == digest, "issuer certificate hash mismatch"
    modulus = (leftmost + remainder)[:n_i] if n_i > room else leftmost[:n_i]
    return modulus, exponent


def recover_icc_key(
    rid: str, data: dict[int, bytes], static_data: bytes
) -> tuple[bytes, bytes]:
    """Book 2 §6.4: the ICC modulus and exponent from 9F46 (+9F48, 9F47)."""
    i_mod, i_exp = recover_issuer_key(rid, data)
    block = rsa_recover(i_mod, i_exp, data[0x9F46])
    assert block[0] == 0x6A and block[1] == 0x04 and block[-1] == 0xBC
    n_ic = block[19]
    room = len(block) - 42
    leftmost = block[21 : 21 + room]
    remainder = data.get(0x9F48, b"")
    digest = hashlib.sha1(block[1 : 21 + room] + remainder + data[0x9F47] + static_data).digest()  # noqa: S324
    assert block[21 + room : 21 + room + 20] == digest, "ICC certificate hash mismatch"
    modulus = (leftmost + remainder)[:n_ic] if n_ic > room else leftmost[:n_ic]
    return modulus, data[0x9F47]


def check_sdad(
    icc_modulus: bytes, icc_exponent: bytes, sdad: bytes, terminal_data: bytes
) -> bytes:
    """Book 2 §6.5.2 / §6.6.2: recover 9F4B, check the hash; return the ICC dynamic data."""
    block = rsa_recover(icc_modulus, icc_exponent, sdad)
    assert block[0] == 0x6A and block[1] == 0x05 and block[2] == 0x01 and block[-1] == 0xBC
    length = block[3]
    digest = hashlib.sha1(block[1:-21] + terminal_data).digest()  # noqa: S324
    assert block[-21:-1] == digest, "signed dynamic data hash mismatch"
    return block[4 : 4 + length]
