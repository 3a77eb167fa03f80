"""A local *test* PKI for the sync links: a CA, the broker's, a terminal's and the platform's
certificates (P-256, signed by the CA). ``scripts/setup`` runs it for ``<data-dir>/pki/``;
the Mosquitto test fixture runs it for a temporary directory.

Production terminals get their certificates from the operator's PKI; nothing here is meant
for a real fleet (the CA key sits next to the certificates, unencrypted).

Files written (PEM): ``ca.pem``/``ca.key``, ``broker.pem``/``broker.key`` (server, SAN
``localhost``/``127.0.0.1``), ``terminal.pem``/``terminal.key`` (client, CN = terminal id),
``platform.pem``/``platform.key`` (client and server: the platform's MQTT consumer and
HTTPS endpoint). Run again, it keeps every file that is present, so it is idempotent.

    python -m edge_sync.pki <directory> [--terminal-id ETK00001]
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TestPki", "ensure_test_pki", "issue_client_certificate"]

_VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True)
class TestPki:
    """Paths of a generated test PKI."""

    directory: Path

    def __getattr__(self, name: str) -> Path:
        # ca_pem, ca_key, broker_pem, broker_key, terminal_pem, … → directory/<who>.<ext>
        who, _, ext = name.rpartition("_")
        if ext not in ("pem", "key") or not who:
            raise AttributeError(name)
        return self.directory / f"{who}.{ext}"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Etika test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _load_or_make_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not an EC key; delete the pki directory to redo it")
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Etika test CA"))
        .issuer_name(_name("Etika test CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _issue(
    directory: Path,
    who: str,
    common_name: str,
    usages: list[x509.ObjectIdentifier],
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    cert_path, key_path = directory / f"{who}.pem", directory / f"{who}.key"
    if cert_path.exists() and key_path.exists():
        return
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName(common_name),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_test_pki(directory: Path | str, terminal_id: str = "ETK00001") -> TestPki:
    """Create whatever is missing of the test PKI in ``directory``; return its paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca = _load_or_make_ca(directory)
    server, client = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    _issue(directory, "broker", "localhost", [server], ca)
    _issue(directory, "terminal", terminal_id, [client], ca)
    _issue(directory, "platform", "etika-platform", [client, server], ca)
    return TestPki(directory)


def issue_client_certificate(directory: Path | str, common_name: str) -> tuple[Path, Path]:
    """A client certificate and key for ``common_name`` from the test CA (made once):
    ``client-<cn>.pem`` / ``.key``. Tests use one per terminal id the broker's ACL checks."""
    directory = Path(directory)
    ca = _load_or_make_ca(directory)
    who = "client-" + "".join(c if c.isalnum() or c in "._-" else "_" for c in common_name)
    _issue(directory, who, common_name, [ExtendedKeyUsageOID.CLIENT_AUTH], ca)
    return directory / f"{who}.pem", directory / f"{who}.key"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create the local test PKI for the sync links.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--terminal-id", default="ETK00001")
    args = parser.parse_args(argv)
    pki = ensure_test_pki(args.directory, args.terminal_id)
    print(f"test PKI in {pki.directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
