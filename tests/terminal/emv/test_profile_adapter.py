"""The default profile becomes a kernel configuration."""

from __future__ import annotations

from pathlib import Path

from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.profile import load_profile


def test_default_profile_adapts(default_profile_dir: Path) -> None:
    """AIDs, CAPKs (checksums intact) and terminal data come across; plaintext offline PIN
    is cleared, enciphered offline PIN (the pad enciphers it for the card) is kept."""
    profile = load_profile(default_profile_dir)
    config = kernel_config_from_profile(profile)
    assert [a.aid.hex().upper() for a in config.aids] == [a.aid for a in profile.aids]
    for ours, theirs in zip(config.capks, profile.capks, strict=True):
        assert ours.checksum().hex().upper() == theirs.checksum
    assert config.terminal_type == int(profile.terminal.terminal_type)
    assert config.capabilities[1] & 0x80 == 0
    assert config.capabilities[1] & 0x10 == 0x10
    assert config.capabilities[1] & 0x40  # online PIN kept
    assert config.online_capable
