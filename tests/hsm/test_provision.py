"""Creating the token: PINs typed on a pseudo-terminal, never on a command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hsm import provision
from hsm.config import HsmSettings
from hsm.errors import TokenInitFailedError


def test_pins_never_reach_argv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """softhsm2-util is started without the PINs in its argv; they go to its prompts."""
    seen: dict[str, object] = {}

    def fake(argv: list[str], so_pin: str, user_pin: str, timeout: float) -> str:
        seen.update(argv=argv, so_pin=so_pin, user_pin=user_pin)
        return ""

    monkeypatch.setattr(provision, "_answer_prompts", fake)
    provision.create_softhsm_token(HsmSettings(data_dir=tmp_path), "11112222", "33334444")
    argv = seen["argv"]
    assert isinstance(argv, list) and "--init-token" in argv and "--free" in argv
    assert not any("11112222" in a or "33334444" in a for a in argv)
    assert not any(a in ("--pin", "--so-pin") for a in argv)
    assert (seen["so_pin"], seen["user_pin"]) == ("11112222", "33334444")


def test_prompts_are_answered_on_a_real_pty(tmp_path: Path) -> None:
    """The prompt loop types the SO PIN at 'SO PIN' prompts and the user PIN at the others."""
    script = tmp_path / "prompter.sh"
    script.write_text(
        "#!/bin/sh\n"
        "printf 'Please enter SO PIN: '; read a\n"
        "printf 'Please enter user PIN: '; read b\n"
        "[ \"$a\" = so-1234 ] && [ \"$b\" = user-5678 ] && echo fine\n"
    )
    script.chmod(0o700)
    output = provision._answer_prompts([str(script)], "so-1234", "user-5678", 10)
    assert "fine" in output


def test_failure_is_reported_without_pins(tmp_path: Path) -> None:
    """A failing tool gives TokenInitFailedError with its last line and exit status."""
    script = tmp_path / "fails.sh"
    script.write_text("#!/bin/sh\necho 'ERROR: Could not initialize the token.'\nexit 1\n")
    script.chmod(0o700)
    with pytest.raises(TokenInitFailedError, match="Could not initialize") as info:
        provision._answer_prompts([str(script)], "so-1234", "user-5678", 10)
    assert "so-1234" not in str(info.value) and info.value.fields["exit_status"] == 1


def test_missing_tool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without softhsm2-util the error says to install softhsm2."""
    monkeypatch.setattr(provision.shutil, "which", lambda name: None)
    with pytest.raises(TokenInitFailedError, match="install softhsm2"):
        provision.create_softhsm_token(HsmSettings(data_dir=tmp_path), "11112222", "33334444")
