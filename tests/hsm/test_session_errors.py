"""Each error case of the key store, raised by the real module and token, gives its message."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from hsm import KeyPurpose, KeyStore
from hsm.config import HsmSettings, ensure_pin_file, read_pin
from hsm.errors import (
    KeyMissingError,
    KeyStoreClosedError,
    ModuleMissingError,
    PinMissingError,
    TokenMissingError,
    WrongPinError,
)
from hsm.session import SessionOwner
from tests.fixtures.hsm import SPARE_LABEL, SPARE_PIN

pytestmark = pytest.mark.hsm


def test_module_missing(hsm_settings: HsmSettings) -> None:
    """A module path that does not load says to install softhsm2 or set ETIKA_PKCS11_MODULE."""
    bad = replace(hsm_settings, module="/nonexistent/libnothing.so")
    with pytest.raises(ModuleMissingError, match="install softhsm2 or set ETIKA_PKCS11_MODULE"):
        KeyStore.open(bad)


def test_token_missing(hsm_settings: HsmSettings) -> None:
    """An absent token label says to run etika hsm init."""
    with pytest.raises(TokenMissingError, match="run etika hsm init"):
        KeyStore.open(replace(hsm_settings, token_label="no-such-token"))


def test_wrong_pin(hsm_settings: HsmSettings) -> None:
    """A wrong user PIN is refused with WrongPinError naming where the PIN comes from; the PIN
    itself is not in the message."""
    spare = replace(hsm_settings, token_label=SPARE_LABEL, user_pin="99999999")
    with pytest.raises(WrongPinError, match="refused the user PIN") as info:
        SessionOwner.open(spare)
    assert "99999999" not in str(info.value) and "hsm-pin" in str(info.value)


def test_key_missing(hsm_settings: HsmSettings) -> None:
    """A token without keys (never initialised) says which key is missing and what to run."""
    spare = replace(hsm_settings, token_label=SPARE_LABEL, user_pin=SPARE_PIN)
    with KeyStore.open(spare) as store:
        with pytest.raises(KeyMissingError, match=r"etika-signing-v1.*etika hsm init"):
            store.sign(b"x")
        with pytest.raises(KeyMissingError, match="etika-tokenisation-v1"):
            store.fingerprint("4761739001010119")


def test_closed_store_refuses_reuse(hsm_settings: HsmSettings) -> None:
    """After close() every call raises KeyStoreClosedError; closing twice is harmless."""
    store = KeyStore.open(hsm_settings)
    store.close()
    store.close()
    with pytest.raises(KeyStoreClosedError, match="closed"):
        store.sign(b"x")
    with pytest.raises(KeyStoreClosedError):
        store.rotate(KeyPurpose.SIGNING)


def test_pin_missing_and_pin_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No PIN file and no ETIKA_HSM_PIN says to run etika hsm init; the file is 0600."""
    monkeypatch.delenv("ETIKA_HSM_PIN", raising=False)
    with pytest.raises(PinMissingError, match="run etika hsm init"):
        read_pin(tmp_path)
    path = ensure_pin_file(tmp_path)
    assert path is not None and (os.stat(path).st_mode & 0o777) == 0o600
    assert len(read_pin(tmp_path)) == 16 and ensure_pin_file(tmp_path) is None
    monkeypatch.setenv("ETIKA_HSM_PIN", "from-env")
    assert read_pin(tmp_path) == "from-env"


def test_settings_repr_hides_the_pin(hsm_settings: HsmSettings) -> None:
    """HsmSettings never shows the user PIN."""
    assert hsm_settings.user_pin and hsm_settings.user_pin not in repr(hsm_settings)


def test_session_token_does_not_leak_into_the_environment(hsm_settings: HsmSettings) -> None:
    """After the fixture loaded the module, SOFTHSM2_CONF no longer names the session token,
    so other tests' subprocesses cannot land on it."""
    conf = str(hsm_settings.data_dir / "softhsm" / "softhsm2.conf")
    assert os.environ.get("SOFTHSM2_CONF") != conf
    with KeyStore.open(hsm_settings) as store:
        store.sign(b"x")
    assert os.environ.get("SOFTHSM2_CONF") != conf
