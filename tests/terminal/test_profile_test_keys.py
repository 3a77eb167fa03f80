"""The `test` profile carries the schemes' published test CA keys (#13 item 15).

Lab test cards are certified under the schemes' test CAs (EMV 4.4 Book 2 §5.1, Annex A2);
the `default` profile keeps the card simulator's keys, so both must load and stay apart.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from simulators.card.capks import test_capks
from terminal.errors import ConfigError
from terminal.profile import load_profile

TEST_PROFILE_DIR = Path(__file__).resolve().parents[2] / "firmware-config" / "test"

# (RID, index) of every published scheme test key the profile lists, and a checksum each
# that a second, independent key list also gives (Visa's), as known answers.
SCHEME_TEST_KEYS = {
    ("A000000003", "92"), ("A000000003", "94"), ("A000000003", "95"),
    ("A000000004", "EF"), ("A000000004", "F1"), ("A000000004", "F3"), ("A000000004", "F5"),
    ("A000000004", "F6"), ("A000000004", "F7"), ("A000000004", "F8"), ("A000000004", "F9"),
    ("A000000004", "FA"),
}
KNOWN_CHECKSUMS = [
    # rid,         index, checksum
    ("A000000003", "92", "429C954A3859CEF91295F663C963E582ED6EB253"),
    ("A000000003", "94", "C4A3C43CCF87327D136B804160E47D43B60E6E0F"),
    ("A000000003", "95", "EE1511CEC71020A9B90443B37B1D5F6E703030F6"),
]


def test_test_profile_loads_with_every_scheme_test_key() -> None:
    """`firmware-config/test` validates and lists the Visa and Mastercard test CA keys."""
    profile = load_profile(TEST_PROFILE_DIR)
    listed = {(c.rid, c.index) for c in profile.capks}
    assert SCHEME_TEST_KEYS <= listed


@pytest.mark.parametrize(("rid", "index", "checksum"), KNOWN_CHECKSUMS)
def test_visa_test_keys_match_their_published_checksum(rid: str, index: str, checksum: str) -> None:
    """The Visa test keys hash (Book 2 Annex B2.1) to the checksum Visa publishes for them."""
    capk = next(c for c in load_profile(TEST_PROFILE_DIR).capks if (c.rid, c.index) == (rid, index))
    digest = hashlib.sha1(
        bytes.fromhex(capk.rid + capk.index + capk.modulus + capk.exponent),
        usedforsecurity=False,
    ).hexdigest().upper()
    assert digest == checksum == capk.checksum


def _capk_ids() -> list[str]:
    return [f"{c.rid}-{c.index}" for c in load_profile(TEST_PROFILE_DIR).capks]


@pytest.mark.parametrize("capk_id", _capk_ids())
def test_every_test_profile_key_hashes_to_its_checksum(capk_id: str) -> None:
    """Each CA key of the profile hashes (Book 2 §11.2, SHA-1 of RID‖index‖N‖e) to its checksum."""
    rid, index = capk_id.split("-")
    capk = next(c for c in load_profile(TEST_PROFILE_DIR).capks if (c.rid, c.index) == (rid, index))
    digest = hashlib.sha1(
        bytes.fromhex(capk.rid + capk.index + capk.modulus + capk.exponent),
        usedforsecurity=False,
    ).hexdigest().upper()
    assert digest == capk.checksum


def test_every_scheme_key_names_its_source() -> None:
    """A `# source:` line follows each scheme test key's header, so its provenance can be checked."""
    text = (TEST_PROFILE_DIR / "capks.toml").read_text()
    blocks = text.split("[[capk]]")[1:]
    sourced = set()
    for block in blocks:
        rid = re.search(r'rid = "([0-9A-F]+)"', block)
        index = re.search(r'index = "([0-9A-F]+)"', block)
        assert rid is not None and index is not None
        lines = block.splitlines()
        if len(lines) > 1 and lines[1].startswith("# source: "):
            sourced.add((rid.group(1), index.group(1)))
    assert sourced == SCHEME_TEST_KEYS


def test_bancontact_maestro_is_served_by_mastercard_keys() -> None:
    """The Bancontact Maestro AID has Mastercard's RID, so the Mastercard test keys cover it."""
    profile = load_profile(TEST_PROFILE_DIR)
    maestro = next(aid for aid in profile.aids if aid.aid == "A0000000043060")
    assert maestro.rid == "A000000004"
    assert {c.index for c in profile.capks if c.rid == maestro.rid} >= {"EF", "F1", "F3"}


def test_scheme_keys_are_not_the_simulator_keys() -> None:
    """No scheme RID of the test profile is served by a simulator key; default keeps them all."""
    simulator = {(c.rid, c.index, c.modulus) for c in test_capks()}
    test_keys = {(c.rid, c.index, c.modulus) for c in load_profile(TEST_PROFILE_DIR).capks}
    scheme_rids = {rid for rid, _ in SCHEME_TEST_KEYS}
    assert not {k for k in test_keys & simulator if k[0] in scheme_rids}
    default = load_profile(Path(__file__).resolve().parents[2] / "firmware-config" / "default")
    assert {(c.rid, c.index, c.modulus) for c in default.capks} == simulator


def test_every_application_has_a_ca_key() -> None:
    """Each AID of the test profile has a CA key of its RID (CB is left out, not unkeyed)."""
    profile = load_profile(TEST_PROFILE_DIR)
    rids = {c.rid for c in profile.capks}
    assert all(aid.rid in rids for aid in profile.aids)
    assert "A0000000421010" not in {aid.aid for aid in profile.aids}


def test_a_mistyped_scheme_key_is_refused(tmp_path: Path) -> None:
    """One hex digit changed in a test key's modulus fails its checksum at load."""
    target = tmp_path / "test"
    shutil.copytree(TEST_PROFILE_DIR, target)
    capks = target / "capks.toml"
    text = capks.read_text()
    match = re.search(r'index = "F1"\nmodulus = "([0-9A-F]+)"', text)
    assert match is not None
    modulus = match.group(1)
    altered = modulus[:10] + ("0" if modulus[10] != "0" else "1") + modulus[11:]
    capks.write_text(text.replace(modulus, altered, 1))
    with pytest.raises(ConfigError) as info:
        load_profile(target)
    assert any("checksum does not match" in p for p in info.value.problems)
