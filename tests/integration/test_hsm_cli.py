"""``etika hsm …`` end to end, each run a fresh process on a token in its own data dir."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hsm import KeyPurpose
from hsm.transport import wrap_for_import

pytestmark = pytest.mark.hsm


def etika(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("SOFTHSM2_CONF", "ETIKA_HSM_PIN", "ETIKA_HSM_SO_PIN",
                            "ETIKA_PKCS11_MODULE")}
    environ.update(ETIKA_DATA_DIR=str(data_dir), **env)
    return subprocess.run([sys.executable, "-m", "terminal.cli.main", *args],
                          capture_output=True, text=True, timeout=60, check=False, env=environ)


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("cli-data")
    result = etika(data_dir, "hsm", "init")
    assert result.returncode == 0, result.stderr
    assert "created token 'etika-terminal'" in result.stdout
    return data_dir


def test_init_is_idempotent_and_pin_files_are_private(initialised: Path) -> None:
    """A second init changes nothing; the PIN files are 0600 and PINs never reach stdout."""
    again = etika(initialised, "hsm", "init")
    assert again.returncode == 0 and "already exist" in again.stdout
    for name in ("hsm-pin", "hsm-so-pin"):
        path = initialised / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().strip() not in again.stdout + again.stderr
    conf = (initialised / "softhsm" / "softhsm2.conf").read_text()
    assert f"directories.tokendir = {(initialised / 'softhsm' / 'tokens').resolve()}" in conf


def test_status_json_lists_keys_without_material(initialised: Path) -> None:
    """status --json names the token and each key with attributes and a KCV, nothing secret."""
    result = etika(initialised, "hsm", "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["token_label"] == "etika-terminal"
    labels = {key["label"] for key in status["keys"]}
    assert {"etika-tokenisation-v1", "etika-vault-v1", "etika-signing-v1"} <= labels
    for key in status["keys"]:
        assert key["attributes"]["sensitive"] is True
        assert key["attributes"]["extractable"] is False
        assert set(key) == {"purpose", "label", "version", "key_type", "object_class", "kcv",
                            "current", "attributes"}


def test_rotate_then_status_shows_the_new_current_version(initialised: Path) -> None:
    """rotate signing creates v2, which status marks current while v1 stays listed."""
    result = etika(initialised, "hsm", "rotate", "signing")
    assert result.returncode == 0 and "etika-signing-v2" in result.stdout
    keys = json.loads(etika(initialised, "hsm", "status", "--json").stdout)["keys"]
    signing = {k["version"]: k["current"] for k in keys if k["purpose"] == "signing"}
    assert signing == {1: False, 2: True}
    pem = etika(initialised, "hsm", "public-key", "--version", "1")
    assert pem.returncode == 0 and pem.stdout.startswith("-----BEGIN PUBLIC KEY-----")


def test_import_under_the_test_transport_key(initialised: Path, tmp_path: Path) -> None:
    """import with --test-transport-key unwraps a platform key whose KCV matches the file."""
    delivery = wrap_for_import(KeyPurpose.TOKENISATION, bytes(range(100, 132)))
    path = tmp_path / "tok.json"
    path.write_text(delivery.to_json())
    result = etika(initialised, "hsm", "import", "tokenisation", str(path),
                   "--test-transport-key")
    assert result.returncode == 0, result.stderr
    assert f"KCV {delivery.kcv}" in result.stdout
    wrong = etika(initialised, "hsm", "import", "vault", str(path), "--test-transport-key")
    assert wrong.returncode == 1 and "holds a tokenisation key, not vault" in wrong.stderr


@pytest.mark.parametrize(
    ("args",                          "env",                                   "message"),
    [
        (("hsm", "status"),               {"ETIKA_PKCS11_MODULE": "/nope/lib.so"},  "install softhsm2 or set ETIKA_PKCS11_MODULE"),
        (("hsm", "status"),               {"ETIKA_HSM_PIN": "00000000"},           "refused the user PIN"),
        (("hsm", "rotate", "nothing"),    {},                                      "invalid choice"),
    ],
)
def test_errors_are_one_line(initialised: Path, args: tuple[str, ...], env: dict[str, str],
                             message: str) -> None:
    """Mistakes end with a one-line message and a non-zero status, never a traceback."""
    result = etika(initialised, *args, **env)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def test_status_before_init_says_run_init(tmp_path: Path) -> None:
    """status on a data dir without a token says to run etika hsm init."""
    result = etika(tmp_path, "hsm", "status")
    assert result.returncode == 1 and "run etika hsm init" in result.stderr


def test_public_key_shows_its_fingerprint_and_a_missing_version_advises_rotate(
    initialised: Path,
) -> None:
    """#16.13/#16.10: public-key prints a bare PEM on stdout and its fingerprint on stderr
    (the one register-terminal shows); a version never created advises `hsm rotate`."""
    from edge_sync.signing import public_key_fingerprint

    pem = etika(initialised, "hsm", "public-key")
    assert pem.returncode == 0 and pem.stdout.endswith("-----END PUBLIC KEY-----\n")
    assert f"fingerprint {public_key_fingerprint(pem.stdout)}" in pem.stderr
    missing = etika(initialised, "hsm", "public-key", "--version", "99")
    assert missing.returncode == 1
    assert "hsm rotate signing" in missing.stderr and "hsm init" not in missing.stderr
