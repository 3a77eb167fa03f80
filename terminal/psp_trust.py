"""What the terminal trusts about its PSPs, kept out of the pushable profile.

The profile directory can be replaced by a config downlink, so two things live beside it,
in the terminal's data directory, where only someone at the terminal can change them
(issue #12 items 6 and 8):

- **REST credentials** (:func:`read_api_key`): one file per connector,
  ``<data dir>/psp-credentials/<connector>``, holding its secret API key; refused unless
  owned by this user and unreadable by anyone else (mode ``0600`` or ``0400``).
- **P2PE key pins** (:class:`P2pePins`): the SHA-256 fingerprint of each connector's P2PE
  public key, in ``<data dir>/p2pe-pins.toml``. A connector's key is pinned the first time
  the terminal uses it; afterwards a profile whose key for that connector differs is
  refused, so a pushed profile cannot redirect card data to another key. An operator who
  really changes a PSP key deletes its line (``etika`` never does).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tomllib
from pathlib import Path

from terminal.errors import ConfigError

__all__ = ["CREDENTIALS_DIR", "PINS_FILE", "P2pePins", "fingerprint", "read_api_key"]

#: Under the data directory: one secret file per REST connector.
CREDENTIALS_DIR = "psp-credentials"
#: Under the data directory: ``[p2pe]`` connector = "sha256:<hex>".
PINS_FILE = "p2pe-pins.toml"


def read_api_key(path: Path) -> str:
    """The secret in ``path`` (surrounding whitespace dropped); ``ConfigError`` when the file
    is readable by others, not ours, empty or not text."""
    try:
        info = path.stat()
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the PSP credentials ({exc.strerror})"]) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError([f"{path}: PSP credentials must be a regular file"])
    if info.st_mode & 0o077 or info.st_uid != os.getuid():
        raise ConfigError([f"{path}: PSP credentials must be owned by this user and readable "
                           f"by no one else (chmod 600 {path})"])
    try:
        key = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: PSP credentials are not ASCII text"]) from None
    if not key or any(c.isspace() or not c.isprintable() for c in key):
        raise ConfigError([f"{path}: PSP credentials must be one token on one line"])
    return key


def fingerprint(public_key_pem: bytes) -> str:
    """``sha256:<hex>`` of the key's DER SubjectPublicKeyInfo (RFC 7469 style pinning)."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError as exc:
        raise ConfigError([f"not a PEM public key ({exc})"]) from None
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


class P2pePins:
    """The terminal's own P2PE key pins (trust on first use, then strict)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, str]:
        try:
            data = tomllib.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        # ValueError: not UTF-8, not TOML, or a decimal past int()'s digit limit (which
        # tomllib lets out bare); RecursionError: nested past the parser's recursion.
        except (OSError, ValueError, RecursionError) as exc:
            raise ConfigError([f"{self.path}: cannot read the P2PE key pins ({exc})"]) from None
        pins = data.get("p2pe", {})
        if not isinstance(pins, dict) or not all(
                isinstance(v, str) and v.startswith("sha256:") for v in pins.values()):
            raise ConfigError([f"{self.path}: [p2pe] must map connector names to "
                               "\"sha256:<hex>\" fingerprints"])
        return pins

    def pinned(self) -> dict[str, str]:
        return dict(self._read())

    def check(self, connector: str, public_key_pem: bytes) -> None:
        """Pin ``connector``'s key if it has no pin yet; ``ConfigError`` if it differs."""
        pins = self._read()
        actual = fingerprint(public_key_pem)
        expected = pins.get(connector)
        if expected is None:
            pins[connector] = actual
            self._write(pins)
            return
        if expected.lower() != actual:
            raise ConfigError([
                f"routing.toml: psp {connector!r}: its P2PE public key ({actual}) is not the "
                f"one pinned in {self.path} ({expected}); card data is not sealed for an "
                "unpinned key (delete the pin only if the PSP really changed its key)"
            ])

    def _write(self, pins: dict[str, str]) -> None:
        lines = ["# P2PE public key pins: the terminal's own, never pushed (etika psp_trust).",
                 "[p2pe]"]
        lines += [f'"{name}" = "{value}"' for name, value in sorted(pins.items())]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
