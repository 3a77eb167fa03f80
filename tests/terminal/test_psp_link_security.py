"""PSP links off this machine are encrypted and authenticated; key paths stay in the profile
and P2PE keys are pinned (issue #12 items 6 and 8), hostile profile values are ConfigErrors
with file:key (issue #17 item 10)."""

from __future__ import annotations

import os
import shutil
import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge_sync.connectors import PayPalConnector, StripeConnector
from edge_sync.connectors.errors import OutcomeUnknownError, PspUnreachableError
from edge_sync.pki import ensure_test_pki
from simulators.psp.acquirer import Acquirer
from simulators.psp.iso_host import Iso8583Host
from simulators.psp.keys import private_key_path
from terminal.errors import ConfigError
from terminal.profile import load_profile
from terminal.psp_routing import build_router
from terminal.psp_trust import P2pePins, fingerprint, read_api_key

_STRIPE = '''[[psp]]
name = "stripe"
kind = "stripe"
url = "http://127.0.0.1:8590"'''


@pytest.fixture
def profile_copy(tmp_path: Path, default_profile_dir: Path) -> Path:
    target = tmp_path / "profile"
    shutil.copytree(default_profile_dir, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def _problems(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_profile(directory)
    return info.value.problems


@pytest.mark.parametrize(
    ("filename",        "old",                                 "new",                                                  "key",                           "reason"),
    [
        ("routing.toml",    'url = "http://127.0.0.1:8590"',       'url = "http://[::1"',                                  "psp[3].url",                    "not a valid URL"),
        ("routing.toml",    'url = "http://127.0.0.1:8590"',       'url = "http://127.0.0.1:99999"',                       "psp[3].url",                    "not a valid URL"),
        ("routing.toml",    'url = "http://127.0.0.1:8590"',       'url = "ftp://127.0.0.1/"',                             "psp[3].url",                    "http:// or https://"),
        ("routing.toml",    'url = "http://127.0.0.1:8590"',       'url = "http://api.stripe.example"',                    "psp[3]",                        "use https://"),
        ("routing.toml",    'url = "http://127.0.0.1:8590"',       'url = "https://user:pw@api.stripe.example"',           "psp[3].url",                    "credentials"),
        ("routing.toml",    'host = "127.0.0.1"',                  'host = "10.1.2.3"',                                    "psp[0]",                        "tls = true"),
        ("routing.toml",    'host = "127.0.0.1"',                  'host = "acq.example"\ntls = true',                     "psp[0]",                        "mutual TLS"),
        ("routing.toml",    'host = "127.0.0.1"',                  'host = "acq.example"\ntls = true\ntls_cert_file = "p2pe/iso8583-test.pem"\ntls_key_file = "p2pe/iso8583-test.pem"', "psp[0]", "mac = true"),
        ("routing.toml",    'p2pe_public_key = "p2pe/iso8583-test.pem"', 'p2pe_public_key = "/etc/ssl/certs/x.pem"',      "psp[0].p2pe_public_key",        "absolute path"),
        ("routing.toml",    'p2pe_public_key = "p2pe/iso8583-test.pem"', 'p2pe_public_key = "../profile/p2pe/iso8583-test.pem"', "psp[0].p2pe_public_key", None),
        ("routing.toml",    'p2pe_public_key = "p2pe/iso8583-test.pem"', 'p2pe_public_key = "../../x.pem"',                "psp[0].p2pe_public_key",        "outside the profile"),
        ("currencies.toml", 'as_of = "2026-11-22T06:00:00Z"',      'as_of = 0001-01-01T00:00:00+01:00',                    "fx_rate[0].as_of",              "between 2000 and 2999"),
        ("currencies.toml", 'as_of = "2026-11-22T06:00:00Z"',      'as_of = 9999-12-31T23:59:59-01:00',                    "fx_rate[0].as_of",              "between 2000 and 2999"),
    ],
)
def test_hostile_profile_values(profile_copy: Path, filename: str, old: str, new: str,
                                key: str, reason: str | None) -> None:
    """Each hostile value is a ConfigError naming file:key and why, at load."""
    _edit(profile_copy / filename, old, new)
    if reason is None:  # a ".." that resolves back inside the profile is fine
        load_profile(profile_copy)
        return
    problems = _problems(profile_copy)
    assert any(f"{filename}:{key}" in p and reason in p for p in problems), problems


def test_fx_age_overflow_is_refused(profile_copy: Path) -> None:
    """An FX max age beyond any datetime is refused at load, not an OverflowError later."""
    _edit(profile_copy / "currencies.toml", "max_age_s = ", "max_age_s = 99999999999999 # ")
    assert any("fx_rate[0].max_age_s" in p for p in _problems(profile_copy))


def test_deeply_nested_toml_is_a_config_error(profile_copy: Path) -> None:
    """Deeply nested TOML is a ConfigError naming the file, not a RecursionError."""
    with (profile_copy / "limits.toml").open("a") as out:
        out.write("\n[fraud_deep]\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    problems = _problems(profile_copy)
    assert any("limits.toml" in p and "nested too deep" in p for p in problems), problems


def test_moderately_nested_toml_is_bounded(profile_copy: Path) -> None:
    """Nesting below the recursion limit but past any real setting is refused by depth."""
    with (profile_copy / "limits.toml").open("a") as out:
        out.write("\n[fraud_deep]\nx = " + "[" * 200 + "]" * 200 + "\n")
    problems = _problems(profile_copy)
    assert any("limits.toml:fraud_deep.x" in p and "nested too deep" in p for p in problems), \
        problems


def test_symlink_out_of_the_profile_is_refused(profile_copy: Path, tmp_path: Path) -> None:
    """A key file that is a symbolic link out of the profile directory is refused."""
    outside = tmp_path / "elsewhere.pem"
    shutil.copy(profile_copy / "p2pe/iso8583-test.pem", outside)
    (profile_copy / "p2pe/link.pem").symlink_to(outside)
    _edit(profile_copy / "routing.toml", 'p2pe_public_key = "p2pe/iso8583-test.pem"',
          'p2pe_public_key = "p2pe/link.pem"')
    assert any("outside the profile" in p for p in _problems(profile_copy))


# --- REST credentials -------------------------------------------------------------------

def _remote_stripe(profile_copy: Path) -> None:
    _edit(profile_copy / "routing.toml", 'url = "http://127.0.0.1:8590"',
          'url = "https://api.stripe.example"')


def test_remote_rest_psp_needs_credentials(profile_copy: Path, tmp_path: Path) -> None:
    """A non-loopback REST PSP without a credentials file is a ConfigError: no built-in key."""
    _remote_stripe(profile_copy)
    with pytest.raises(ConfigError, match=r"stripe.*no credentials"):
        build_router(load_profile(profile_copy), credentials_dir=tmp_path / "creds")


def test_credentials_come_from_the_connectors_file(profile_copy: Path, tmp_path: Path) -> None:
    """The REST secret is read from <credentials>/<connector>; loopback simulators get none."""
    _remote_stripe(profile_copy)
    creds = tmp_path / "creds"
    creds.mkdir()
    secret = creds / "stripe"
    secret.write_text("sk_live_from_file\n")
    secret.chmod(0o600)
    router = build_router(load_profile(profile_copy), credentials_dir=creds)
    stripe, paypal = router.connectors["stripe"], router.connectors["paypal"]
    assert isinstance(stripe, StripeConnector)
    assert stripe.settings.api_key == "sk_live_from_file"
    assert paypal.settings.api_key is None  # type: ignore[attr-defined]


def test_default_profile_sends_no_hard_coded_key(default_profile_dir: Path) -> None:
    """The loopback simulators of the default profile get no API key from code."""
    router = build_router(load_profile(default_profile_dir))
    rest = [c for c in router.connectors.values() if isinstance(c, StripeConnector | PayPalConnector)]
    assert rest and all(c.settings.api_key is None for c in rest)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_credentials_readable_by_others_are_refused(tmp_path: Path, mode: int) -> None:
    """A credentials file others can read is refused, naming the chmod to run."""
    secret = tmp_path / "stripe"
    secret.write_text("sk_live_x")
    secret.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_api_key(secret)


# --- P2PE pins ----------------------------------------------------------------------------

def test_p2pe_key_swapped_by_a_pushed_profile_is_refused(profile_copy: Path,
                                                          tmp_path: Path) -> None:
    """The first build pins each P2PE key; a profile that later names another key for the
    same connector is refused (issue #12 item 8)."""
    pins = P2pePins(tmp_path / "data" / "p2pe-pins.toml")
    build_router(load_profile(profile_copy), p2pe_pins=pins)
    pinned = pins.pinned()
    assert pinned["cih"] == fingerprint((profile_copy / "p2pe/iso8583-test.pem").read_bytes())
    assert os.stat(pins.path).st_mode & 0o077 == 0
    attacker = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (profile_copy / "p2pe/iso8583-test.pem").write_bytes(attacker)
    with pytest.raises(ConfigError, match="not the one pinned"):
        build_router(load_profile(profile_copy), p2pe_pins=pins)


@pytest.mark.parametrize("text", ["[p2pe]\ncih = " + "9" * 5000, "x = " + "[" * 5000,
                                  "[p2pe\n"])
def test_unreadable_pins_file_is_a_config_error(tmp_path: Path, text: str) -> None:
    """A pins file past int()'s digit limit, nested past the parser or not TOML is a
    ConfigError naming it, not a bare ValueError or RecursionError."""
    pins = P2pePins(tmp_path / "p2pe-pins.toml")
    pins.path.write_text(text)
    with pytest.raises(ConfigError, match="cannot read the P2PE key pins"):
        pins.pinned()


# --- mutual TLS to an ISO 8583 host -------------------------------------------------------

@pytest.mark.network
async def test_iso8583_mutual_tls_from_the_profile(profile_copy: Path, tmp_path: Path) -> None:
    """tls_* files of the profile give a link the host accepts only with our client
    certificate; without it the handshake fails and nothing is sent."""
    pki = ensure_test_pki(tmp_path / "pki")
    for name in ("ca.pem", "terminal.pem", "terminal.key"):
        shutil.copy(pki.directory / name, profile_copy / name)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_pem))
    server.load_cert_chain(pki.broker_pem, pki.broker_key)
    server.verify_mode = ssl.CERT_REQUIRED
    acquirer = Acquirer(private_key_path("iso8583").read_bytes())
    async with Iso8583Host(acquirer, ssl_context=server) as host:
        _edit(profile_copy / "routing.toml", "port = 8583",
              f'port = {host.port}\ntls = true\ntls_ca_file = "ca.pem"\n'
              'tls_cert_file = "terminal.pem"\ntls_key_file = "terminal.key"')
        router = build_router(load_profile(profile_copy))
        try:
            assert (await router.echo("cih")).approved
        finally:
            await router.aclose()
        _edit(profile_copy / "routing.toml", 'tls_cert_file = "terminal.pem"\n'
              'tls_key_file = "terminal.key"', "")
        router = build_router(load_profile(profile_copy))
        try:
            # TLS 1.3 refuses a missing client certificate after the handshake: either way
            # the host never sees a message.
            with pytest.raises((PspUnreachableError, OutcomeUnknownError)):
                await router.echo("cih")
            assert acquirer.postings == 0
        finally:
            await router.aclose()


# --- ISO 8583 MAC ---------------------------------------------------------------------------

def test_mac_connectors_get_their_key_from_the_given_source(profile_copy: Path) -> None:
    """mac = true asks mac_for(connector) for the key; without a key source it is refused."""
    from edge_sync.connectors import Iso8583Connector
    from edge_sync.connectors.iso8583_mac import SoftwareCmac

    _edit(profile_copy / "routing.toml", "port = 8583", "port = 8583\nmac = true")
    profile = load_profile(profile_copy)
    asked: list[str] = []

    def mac_for(name: str) -> SoftwareCmac:
        asked.append(name)
        return SoftwareCmac(bytes(16))

    cih = build_router(profile, mac_for=mac_for).connectors["cih"]
    assert isinstance(cih, Iso8583Connector) and cih.settings.mac is not None
    assert asked == ["cih"]
    with pytest.raises(ConfigError, match="mac = true"):
        build_router(profile)
