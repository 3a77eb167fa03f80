"""The profile's certification revocation list, ``crl.toml`` (optional).

EMV 4.4 Book 2 §5.3 step 10 (SDA) and §6.3 step 10 (DDA/CDA): the terminal may check the
concatenation RID ‖ CA public key index ‖ issuer certificate serial number against a
revocation list from the payment systems; a listed issuer certificate fails offline data
authentication. Each entry names a revoked **issuer** public key certificate::

    [[revoked]]
    rid = "A000000003"     # RID of the CA that signed it
    index = "92"           # CA public key index (8F)
    serial = "7E5E01"      # certificate serial number, 3 bytes (Book 2 Table 6)

A profile without ``crl.toml`` has an empty list. The platform pushes updates with the
``crl`` downlink (``replace`` / ``add`` / ``remove``, like the blacklist); the terminal
rewrites this file with :func:`render_crl` and swaps the profile in atomically.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from terminal.errors import ConfigError

__all__ = ["CRL_FILE", "CrlFile", "RevokedCertificate", "crl_problems", "read_crl", "render_crl"]

CRL_FILE = "crl.toml"


class RevokedCertificate(BaseModel):
    """One revoked issuer public key certificate: RID, CA index and its serial number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rid: Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{10}$", to_upper=True)]
    index: Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{2}$", to_upper=True)]
    serial: Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{6}$", to_upper=True)]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rid, self.index, self.serial)


class CrlFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    revoked: list[RevokedCertificate] = Field(default_factory=list, max_length=100_000)

    @model_validator(mode="after")
    def _unique(self) -> CrlFile:
        keys = [entry.key for entry in self.revoked]
        if len(set(keys)) != len(keys):
            raise ValueError("a (rid, index, serial) entry is listed twice")
        return self


_HEADER = """\
# Certification revocation list (EMV 4.4 Book 2 §5.3 step 10, §6.3 step 10): revoked
# issuer public key certificates as RID, CA public key index and certificate serial.
# A card whose issuer certificate is listed fails offline data authentication.
# Written by the terminal when the platform pushes a `crl` downlink{version}.
"""


def render_crl(entries: Iterable[RevokedCertificate], version: int | None = None) -> str:
    """``crl.toml`` text for ``entries`` (sorted, one ``[[revoked]]`` table each)."""
    text = _HEADER.format(version=f" (version {version})" if version is not None else "")
    for entry in sorted(set(entries), key=lambda e: e.key):
        text += (
            f'\n[[revoked]]\nrid = "{entry.rid}"\nindex = "{entry.index}"\n'
            f'serial = "{entry.serial}"\n'
        )
    return text


def crl_problems(directory: Path) -> tuple[list[RevokedCertificate], list[str]]:
    """The revoked certificates of ``directory/crl.toml`` and its problems as ``file:key: why``.

    No file is an empty list; the problems are reported like every other profile file's.
    """
    # Imported here: terminal.profile's loader imports this module (a cycle otherwise).
    from terminal.profile.toml_reading import format_loc, read_toml

    try:
        # Bounded in size and nesting like every profile file (issue #17 item 10); the
        # largest list (100,000 entries of some 60 bytes) fits in 8 MiB.
        data, problem = read_toml(Path(directory) / CRL_FILE, CRL_FILE, max_bytes=8 << 20)
    except FileNotFoundError:
        return [], []
    if data is None:
        return [], [str(problem)]
    try:
        return list(CrlFile.model_validate(data).revoked), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = format_loc(error["loc"])
            problems.append(f"{CRL_FILE}:{where}: {error['msg'].removeprefix('Value error, ')}")
        return [], problems


def read_crl(directory: Path) -> list[RevokedCertificate]:
    """The revoked certificates of a profile directory; :class:`ConfigError` if broken."""
    entries, problems = crl_problems(directory)
    if problems:
        raise ConfigError([f"{Path(directory) / p}" for p in problems], directory=str(directory))
    return entries
