"""Certification revocation list: revoked issuer certificates fail ODA (#13 item 12).

EMV 4.4 Book 2 §5.3 step 10 (SDA) and §6.3 step 10 (DDA/CDA): RID ‖ CA index ‖ issuer
certificate serial on the terminal's revocation list makes offline data authentication fail.
"""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest

import simulators.card.reader as reader_module
from simulators.card import certs
from simulators.card.personalise import ca_key, issuer_cert_serial, issuer_key
from simulators.card.profiles import REVOKED_ISSUER_CERTIFICATES, get_profile
from terminal.emv.config import Capk, KernelConfig, TransactionData
from terminal.emv.errors import OdaError
from terminal.emv.kernel import EmvKernel, TransactionResult
from terminal.emv.oda import recover_issuer_key
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.emv.tvr import Tvr, TvrBit
from terminal.errors import ConfigError
from terminal.profile import load_profile
from terminal.profile_crl import RevokedCertificate, read_crl, render_crl

pytestmark = pytest.mark.filterwarnings("ignore:.*TripleDES.*")

DEFAULT = Path(__file__).resolve().parents[3] / "firmware-config" / "default"
WHEN = datetime(2026, 11, 22, 10, 0)


def _config(profile_dir: Path = DEFAULT) -> KernelConfig:
    return replace(kernel_config_from_profile(load_profile(profile_dir)),
                   random_bytes=lambda n: b"\xff" * n)


async def _transact(config: KernelConfig, card: str) -> TransactionResult:
    reader = reader_module.in_process_reader(card, "contact", ())
    session = await reader.connect(await reader.wait_for_card())
    data = TransactionData(amount=2500, currency_numeric=504, when=WHEN, online_available=False)
    return await EmvKernel(config).transact(session, data)  # type: ignore[arg-type]


def _visa_issuer_certificate(serial: bytes) -> tuple[Capk, bytes, bytes]:
    ca, issuer = ca_key("A000000003", 0x92), issuer_key("visa", "A000000003")
    cert = certs.issuer_certificate(ca, issuer, "476173", "1230", serial)
    capk = Capk(bytes.fromhex("A000000003"), 0x92, ca.modulus, ca.exponent)
    return capk, cert.certificate, cert.remainder


def test_revoked_serial_fails_issuer_key_recovery() -> None:
    """Book 2 §5.3 step 10: a certificate whose serial the CA key lists as revoked fails."""
    capk, certificate, remainder = _visa_issuer_certificate(b"\x7e\x5e\x01")
    revoked = replace(capk, revoked_serials=frozenset({b"\x7e\x5e\x01"}))
    with pytest.raises(OdaError) as info:
        recover_issuer_key(revoked, certificate, remainder, b"\x03", "4761739001010069",
                           date(2026, 11, 22))
    assert info.value.step == "issuer_revoked"
    key = recover_issuer_key(capk, certificate, remainder, b"\x03", "4761739001010069",
                             date(2026, 11, 22))
    assert key.size == 144


async def test_revoked_card_fails_dda_with_the_default_profile() -> None:
    """The `visa-revoked` card's ODA fails (TVR DDA failed) under the default profile's CRL."""
    result = await _transact(_config(), "visa-revoked")
    assert (result.oda, result.oda_result) == ("dda", "failed")
    assert TvrBit.DDA_FAILED in Tvr(bytes.fromhex(result.tvr))
    assert result.cryptogram == "AAC"  # TAC/IAC denial+default with ODA failed, offline


async def test_same_card_authenticates_without_the_crl_entry(tmp_path: Path) -> None:
    """Only the list decides: with an empty crl.toml the same card's DDA verifies."""
    profile = tmp_path / "p"
    shutil.copytree(DEFAULT, profile)
    (profile / "crl.toml").write_text(render_crl([]))
    result = await _transact(_config(profile), "visa-revoked")
    assert (result.oda, result.oda_result) == ("dda", "ok")


def test_default_profile_lists_the_simulators_revoked_certificates() -> None:
    """The default crl.toml is exactly the simulator's revoked issuer certificates."""
    listed = tomllib.loads((DEFAULT / "crl.toml").read_text())["revoked"]
    expected = [{"rid": rid, "index": f"{index:02X}", "serial": serial}
                for rid, index, serial in REVOKED_ISSUER_CERTIFICATES]
    assert listed == expected
    card_app = get_profile("visa-revoked").apps[0]
    assert issuer_cert_serial(card_app).hex().upper() == expected[0]["serial"]


def test_crl_entries_reach_only_their_ca_key() -> None:
    """The adapter gives each CAPK the serials of its own RID and index, no other."""
    config = _config()
    by_key = {(k.rid.hex().upper(), k.index): k.revoked_serials for k in config.capks}
    assert by_key[("A000000003", 0x92)] == frozenset({bytes.fromhex("7E5E01")})
    assert all(not serials for key, serials in by_key.items() if key != ("A000000003", 0x92))


@pytest.mark.parametrize(
    ("text",                                                         "problem"),
    [
        ('[[revoked]]\nrid = "A000000003"\nindex = "92"\nserial = "7E5E"\n', "crl.toml:revoked[0].serial"),
        ('[[revoked]]\nrid = "A0000000"\nindex = "92"\nserial = "7E5E01"\n', "crl.toml:revoked[0].rid"),
        ('[[revoked]]\nrid = "A000000003"\nindex = "92"\nserial = "7E5E01"\nx = 1\n', "crl.toml:revoked[0].x"),
        ("[[revoked]\n",                                                  "crl.toml: invalid TOML"),
    ],
)
def test_broken_crl_is_a_located_profile_problem(tmp_path: Path, text: str, problem: str) -> None:
    """A malformed crl.toml refuses the profile with file:key: reason, like every file."""
    profile = tmp_path / "p"
    shutil.copytree(DEFAULT, profile)
    (profile / "crl.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_profile(profile)
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_profile_without_crl_has_an_empty_list(tmp_path: Path) -> None:
    """crl.toml is optional: without it nothing is revoked."""
    profile = tmp_path / "p"
    shutil.copytree(DEFAULT, profile)
    (profile / "crl.toml").unlink()
    assert load_profile(profile).revoked == [] == read_crl(profile)


def test_render_round_trips() -> None:
    """render_crl writes what read_crl reads back, sorted and without duplicates."""
    entries = [RevokedCertificate(rid="a000000004", index="f1", serial="000001"),
               RevokedCertificate(rid="A000000003", index="92", serial="7E5E01")]
    document = tomllib.loads(render_crl(entries + entries[:1], version=3))
    assert [tuple(e.values()) for e in document["revoked"]] == [
        ("A000000003", "92", "7E5E01"), ("A000000004", "F1", "000001")]
