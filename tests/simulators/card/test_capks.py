"""The default profile's CAPKs are the simulator's test CA public keys."""

from __future__ import annotations

import tomllib
from pathlib import Path

from simulators.card.capks import render_toml, test_capks
from simulators.card.profiles import CA_INDEX, PROFILES

CAPKS = Path(__file__).resolve().parents[3] / "firmware-config" / "default" / "capks.toml"


def test_profile_capks_equal_the_simulator_pki() -> None:
    """Every CAPK in the default profile is the key the seeded PKI derives, field for field."""
    listed = tomllib.loads(CAPKS.read_text())["capk"]
    expected = [vars(capk) for capk in test_capks()]
    assert sorted(listed, key=lambda c: c["rid"]) == sorted(expected, key=lambda c: c["rid"])


def test_rendered_entries_are_in_the_file() -> None:
    """The file's entries are exactly what `python -m simulators.card.capks` prints."""
    assert render_toml() in CAPKS.read_text()


def test_every_profile_rid_has_a_ca_key() -> None:
    """Every application of every card profile is certified under a CA key the profile lists."""
    rids = {app.rid for profile in PROFILES.values() for app in profile.apps}
    assert rids <= set(CA_INDEX)
