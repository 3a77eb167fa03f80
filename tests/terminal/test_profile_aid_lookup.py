"""One AID → network lookup: routing picks the application selection picks (EMV Book 1 §12.3.1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from terminal.aid_match import match_aid
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.profile import Profile, load_profile

# A short partial entry listed *before* the specific Visa one: a card AID A0000000031010
# matches both, exactly the Visa one. Selection takes the exact match; the CLI's own loop
# took the first partial one and routed a Visa card as "domestic".
_SHADOW = '''[[aid]]
name = "visa-family"
network = "domestic"
aid = "A000000003"
label = "VISA FAMILY"
partial_match = true
application_version = "008C"
tac_denial = "0010000000"
tac_online = "DC4004F800"
tac_default = "DC4000A800"
floor_limit = 50000
random_selection_threshold = 20000
target_percent = 20
max_target_percent = 50
default_tdol = "9F02065F2A029A039C0195059F3704"
default_ddol = "9F3704"

'''


@pytest.fixture
def overlapping(tmp_path: Path, default_profile_dir: Path) -> Profile:
    target = tmp_path / "profile"
    shutil.copytree(default_profile_dir, target)
    aids = target / "aids.toml"
    text = aids.read_text()
    first = text.index("[[aid]]")
    aids.write_text(text[:first] + _SHADOW + text[first:])
    return load_profile(target)


@pytest.mark.parametrize(
    ("card_aid",             "network"),
    [
        ("A0000000031010",   "visa"),        # exact entry wins over the earlier partial one
        ("A000000003101001", "domestic"),    # longer: both partial, the first listed wins
        ("A0000000032010",   "domestic"),    # only the short partial entry matches
        ("A0000000041010",   "mastercard"),
        ("A0000000990000",   None),
    ],
)
def test_network_for_aid_prefers_the_exact_entry(overlapping: Profile, card_aid: str,
                                                 network: str | None) -> None:
    """Profile.network_for_aid: exact match first, then the first allowed prefix, else None."""
    assert overlapping.network_for_aid(bytes.fromhex(card_aid)) == network


@pytest.mark.parametrize("card_aid", ["A0000000031010", "A000000003101001", "A0000000032010",
                                      "A0000000041010", "A0000000990000"])
def test_routing_and_selection_resolve_overlaps_alike(overlapping: Profile, card_aid: str) -> None:
    """The kernel's AID table and the profile's lookup pick the same application's network."""
    kernel_aids = kernel_config_from_profile(overlapping).aids
    chosen = match_aid(bytes.fromhex(card_aid), kernel_aids, aid=lambda a: a.aid,
                       partial=lambda a: a.partial_match)
    expected = chosen.network if chosen is not None else None
    assert overlapping.network_for_aid(bytes.fromhex(card_aid)) == expected
