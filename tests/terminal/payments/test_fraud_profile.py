"""The profile's ``limits.toml`` ``[fraud]`` section: optional, validated, feeds the scorer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from terminal.errors import ConfigError
from terminal.payments.fraud import FraudScorer, FraudSettings
from terminal.profile import load_profile


@pytest.fixture
def profile_copy(tmp_path: Path, default_profile_dir: Path) -> Path:
    target = tmp_path / "profile"
    shutil.copytree(default_profile_dir, target)
    return target


def _limits_without_fraud(directory: Path) -> None:
    limits = directory / "limits.toml"
    text = limits.read_text(encoding="utf-8")
    limits.write_text(text.split("[fraud]")[0].rsplit("# Fraud scoring", 1)[0],
                      encoding="utf-8")


def test_default_profile_states_the_default_thresholds(default_profile_dir: Path) -> None:
    """The shipped profile's [fraud] section equals the built-in defaults (documentation)."""
    assert load_profile(default_profile_dir).fraud == FraudSettings()


def test_a_profile_without_fraud_section_still_loads(profile_copy: Path) -> None:
    """Profiles written before fraud scoring load, with the default thresholds."""
    _limits_without_fraud(profile_copy)
    assert "[fraud]" not in (profile_copy / "limits.toml").read_text(encoding="utf-8")
    profile = load_profile(profile_copy)
    assert FraudScorer(profile.fraud).settings.decline_at == 0.80


def test_bad_fraud_thresholds_are_reported_by_file_and_key(profile_copy: Path) -> None:
    """A weight above 1 and an unknown key are each reported as limits.toml:fraud…: reason."""
    _limits_without_fraud(profile_copy)
    with (profile_copy / "limits.toml").open("a", encoding="utf-8") as out:
        out.write("\n[fraud]\nreview_at = 0.4\nveloctiy_max_count = 3\n"
                  "[fraud.weights]\ncountry = 1.5\n")
    with pytest.raises(ConfigError) as caught:
        load_profile(profile_copy)
    problems = "\n".join(caught.value.problems)
    assert "limits.toml:fraud.veloctiy_max_count" in problems
    assert "limits.toml:fraud.weights.country" in problems
