"""The test CA public keys as the profile's ``capks.toml`` lists them.

``python -m simulators.card.capks`` prints the entries; the default profile's file was
written from it, and ``tests/simulators/test_capks.py`` proves the two still agree.
Checksum: SHA-1 over RID ‖ index ‖ modulus ‖ exponent (EMV 4.4 Book 2 §11.2.2).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from simulators.card.personalise import ca_key
from simulators.card.profiles import CA_INDEX

__all__ = ["CAPK_EXPIRY", "TestCapk", "render_toml", "test_capks"]

CAPK_EXPIRY = "2030-12-31"


@dataclass(frozen=True)
class TestCapk:
    rid: str
    index: str
    modulus: str
    exponent: str
    expiry: str
    checksum: str


def test_capks() -> list[TestCapk]:
    """One test CA key per RID the simulated cards use (see ``profiles.CA_INDEX``)."""
    out = []
    for rid, index in CA_INDEX.items():
        key = ca_key(rid, index)
        digest = hashlib.sha1(  # noqa: S324 - the CAPK checksum is SHA-1 by definition
            bytes.fromhex(rid) + bytes([index]) + key.modulus + key.exponent
        ).hexdigest()
        out.append(
            TestCapk(
                rid=rid,
                index=f"{index:02X}",
                modulus=key.modulus.hex().upper(),
                exponent=key.exponent.hex().upper(),
                expiry=CAPK_EXPIRY,
                checksum=digest.upper(),
            )
        )
    return out


test_capks.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
TestCapk.__test__ = False  # type: ignore[attr-defined]


def render_toml() -> str:
    """The ``[[capk]]`` entries, in the file's format."""
    blocks = []
    for capk in test_capks():
        blocks.append(
            "[[capk]]\n"
            f'rid = "{capk.rid}"\n'
            f'index = "{capk.index}"\n'
            f'modulus = "{capk.modulus}"\n'
            f'exponent = "{capk.exponent}"\n'
            f'expiry = "{capk.expiry}"\n'
            f'checksum = "{capk.checksum}"\n'
        )
    return "\n".join(blocks)


if __name__ == "__main__":
    print(render_toml(), end="")
