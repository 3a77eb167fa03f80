"""The platform's signing key lives in its own PKCS#11 token on the real SoftHSM2 (#12 item 8).

The platform signs downlinks and acks with an EC P-256 key generated inside a token of its
own (not the terminal's), marked sensitive and not extractable; terminals verify with the
public half that ``etika platform key`` prints. The PIN comes from the environment or a
private file, never from the command line.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass

from edge_sync.errors import SignatureError
from edge_sync.messages import AckVerifier, build_ack, verify_downlink
from edge_sync.platform.downlink import sign_downlink
from edge_sync.platform.signing_key import (
    KEY_LABEL,
    PlatformKeyError,
    PlatformKeySettings,
    TokenPlatformSigner,
    ensure_platform_key,
    open_platform_signer,
)
from edge_sync.signing import SoftwareSigner
from hsm import session as sess
from hsm.config import HsmSettings
from hsm.errors import HsmError

pytestmark = pytest.mark.hsm

TERMINAL_ID = "ETK00001"


def _settings(data_dir: Path, **env: str) -> PlatformKeySettings:
    # A label per test: the session's token directory is shared by every test's tokens.
    return PlatformKeySettings.resolve(
        data_dir, token_label=f"platform-{uuid.uuid4().hex[:12]}", environ=env)


@pytest.fixture
def platform_signer(hsm_settings: HsmSettings, tmp_path: Path) -> Iterator[TokenPlatformSigner]:
    """A platform token and key made by :func:`ensure_platform_key`, opened for signing."""
    settings = _settings(tmp_path)
    created = ensure_platform_key(settings)
    assert created.token_created and created.key_created
    with open_platform_signer(settings) as signer:
        yield signer


def test_the_platform_key_is_in_its_own_token(
    hsm_settings: HsmSettings, platform_signer: TokenPlatformSigner
) -> None:
    """The key pair is in the platform's token, and the terminal's token holds no such key."""
    assert platform_signer.token_label != hsm_settings.token_label
    with sess.SessionOwner.open(hsm_settings) as terminal:
        labels = terminal.run(
            lambda s: {str(o[Attribute.LABEL]) for o in s.get_objects()}, where="listing")
    assert KEY_LABEL not in labels


def test_downlinks_and_acks_signed_in_the_token_verify_on_the_terminal(
    platform_signer: TokenPlatformSigner,
) -> None:
    """What the token signs verifies with the printed public key; another key's does not."""
    public = platform_signer.public_key_pem()
    downlink = sign_downlink(platform_signer, "cmd", {"command": "sync_now"},
                             terminal_id=TERMINAL_ID, seq=1)
    verify_downlink(downlink, public)
    ack = build_ack(platform_signer, terminal_id=TERMINAL_ID, destination="platform",
                    message_id=str(uuid.uuid4()), seq=1, status="accepted")
    verifier = AckVerifier(public, TERMINAL_ID, "platform")
    assert verifier.check(ack) == ack
    forged = build_ack(SoftwareSigner.generate(), terminal_id=TERMINAL_ID,
                       destination="platform", message_id=ack.message_id, seq=1,
                       status="accepted")
    with pytest.raises(SignatureError):
        verifier.check(forged)


def test_the_private_key_cannot_leave_the_token(
    platform_signer: TokenPlatformSigner,
) -> None:
    """CKA_SENSITIVE true, CKA_EXTRACTABLE false from birth; reading CKA_VALUE is refused."""
    attributes = platform_signer.key_attributes()
    assert attributes == {"sensitive": True, "extractable": False, "always_sensitive": True,
                          "never_extractable": True, "sign": True}

    def read_value(session: pkcs11.Session) -> bytes:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=KEY_LABEL)
        return bytes(private[Attribute.VALUE])

    with sess.SessionOwner.open(platform_signer.hsm_settings) as owner:
        with pytest.raises(HsmError, match="AttributeSensitive"):
            owner.run(read_value, where="reading the private key's value")


def test_a_second_ensure_changes_nothing(
    hsm_settings: HsmSettings, tmp_path: Path
) -> None:
    """Running ``etika platform key`` again keeps the token, the key and the PIN files."""
    settings = _settings(tmp_path)
    ensure_platform_key(settings)
    with open_platform_signer(settings) as signer:
        first = signer.public_key_pem()
    again = ensure_platform_key(settings)
    assert (again.token_created, again.key_created, again.pin_files) == (False, False, [])
    with open_platform_signer(settings) as signer:
        assert signer.public_key_pem() == first


def test_a_wrong_pin_is_a_clear_error(hsm_settings: HsmSettings, tmp_path: Path) -> None:
    """A PIN the token refuses names where it came from (here ETIKA_PLATFORM_PIN)."""
    settings = _settings(tmp_path)
    ensure_platform_key(settings)
    wrong = PlatformKeySettings.resolve(tmp_path, token_label=settings.token_label,
                                        environ={"ETIKA_PLATFORM_PIN": "00000000"})
    with pytest.raises(PlatformKeyError, match="refused the PIN from ETIKA_PLATFORM_PIN"):
        open_platform_signer(wrong)


@pytest.mark.parametrize(
    ("mode",  "words"),
    [
        (0o644, "readable by others"),
        (0o640, "readable by others"),
        (0o604, "readable by others"),
    ],
)
def test_a_pin_file_others_may_read_is_refused(tmp_path: Path, mode: int, words: str) -> None:
    """The PIN file must be private: any group or other bit is refused before any login."""
    pin_file = tmp_path / "token-pin"
    pin_file.write_text("12345678\n")
    pin_file.chmod(mode)
    settings = PlatformKeySettings.resolve(tmp_path, pin_file=pin_file, environ={})
    with pytest.raises(PlatformKeyError, match=words) as raised:
        settings.user_pin()
    assert "chmod 600" in str(raised.value) and "12345678" not in str(raised.value)


def test_the_pin_from_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    """ETIKA_PLATFORM_PIN is used as is; no file is needed then."""
    settings = PlatformKeySettings.resolve(tmp_path, environ={"ETIKA_PLATFORM_PIN": "87654321"})
    assert settings.user_pin() == "87654321"


def test_a_mistyped_pin_file_creates_nothing(hsm_settings: HsmSettings, tmp_path: Path) -> None:
    """For a token that exists, a --pin-file that does not exist is an error naming it;
    no new random PIN file (which the token would refuse) is written there."""
    settings = _settings(tmp_path)
    ensure_platform_key(settings)
    typo = tmp_path / "elsewhere" / "token-pn"
    mistyped = PlatformKeySettings.resolve(tmp_path, token_label=settings.token_label,
                                           pin_file=typo, environ={})
    with pytest.raises(PlatformKeyError, match="does not exist"):
        ensure_platform_key(mistyped)
    assert not typo.parent.exists()


def test_a_missing_module_names_the_platform_option(tmp_path: Path) -> None:
    """A module that cannot be loaded points at --pkcs11-module, not the terminal's variable."""
    settings = PlatformKeySettings.resolve(tmp_path, module=str(tmp_path / "nope.so"),
                                           environ={"ETIKA_PLATFORM_PIN": "12345678"})
    with pytest.raises(PlatformKeyError, match="--pkcs11-module") as raised:
        open_platform_signer(settings)
    assert "ETIKA_PKCS11_MODULE" not in str(raised.value)


@pytest.mark.parametrize(
    ("pin_file",       "so_pin_file"),
    [
        ("token-pin",  "token-so-pin"),
        ("secret",     "secret.so-pin"),
        ("pin.txt",    "so-pin.txt"),
    ],
)
def test_the_so_pin_file_is_never_the_user_pin_file(
    tmp_path: Path, pin_file: str, so_pin_file: str
) -> None:
    """The SO PIN has a file of its own beside the user PIN's, whatever --pin-file is named."""
    settings = PlatformKeySettings.resolve(tmp_path, pin_file=tmp_path / pin_file, environ={})
    assert settings.so_pin_file == tmp_path / so_pin_file


def test_a_token_label_longer_than_pkcs11_allows_is_refused_first(tmp_path: Path) -> None:
    """A label over 32 bytes (PKCS#11 v2.40 §4.5) is an error naming the option, raised
    before any PIN file or token is made."""
    with pytest.raises(PlatformKeyError, match="--token-label"):
        PlatformKeySettings.resolve(tmp_path, token_label="x" * 33, environ={})
    assert not (tmp_path / "platform").exists()
