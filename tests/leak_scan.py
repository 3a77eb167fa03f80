"""The card-data leak scanner (DESIGN §5): what to look for, and where it was found.

For each simulator card it looks for the PAN in ASCII and in packed BCD (as tag 5A/57 hold
it, EMV Book 3 §4.3), and for any Luhn-valid run of 13–19 digits; for each card PIN it
looks for the PIN where a clear PIN would show: after a word "pin" (``"pin": "1234"``,
``PIN=1234``) and as a clear ISO 9564 PIN block field (format 0/1/2/3: ``<f><len><pin>``
in hex, ``041234FF…``). A bare four-digit number is everywhere (amounts, times, hashes):
scanning for it would find nothing but noise. A digit run inside a hex string (a hash, a
cryptogram, two SQLite columns side by side) is not taken for a card number; SQLite
databases are also read value by value, so a number stored alone is still seen.

Findings name the source (a file, "MQTT <topic>", "CLI stdout", …) and what matched, never
the matched number itself (the report must not leak what it found).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from simulators.card.profiles import PROFILES
from terminal.logs import luhn_valid

__all__ = ["LUHN_EXEMPT", "Finding", "card_secrets", "scan_blob", "scan_files"]

# A run of digits inside a hex string (a hash, a cryptogram, TLV as hex, two SQLite columns
# side by side) is not a card number; a card number is delimited by something else. Nor is
# one that starts inside an identifier: in a SQLite page the terminal id "ETK00001" runs
# straight into the next column's digits (a Luhn-valid 13-digit run one time in ten). Every
# SQLite value is also scanned on its own (_sqlite_values), where no neighbour is glued on.
_DIGIT_RUN = re.compile(rb"(?<![0-9A-Za-z])[0-9]{13,19}(?![0-9A-Fa-f])")


@dataclass(frozen=True)
class Finding:
    source: str
    what: str  # "PAN ascii", "PAN bcd", "Luhn-valid run", "PIN"
    #: Where: the offset and the bytes before it (never the number itself).
    where: str = ""

    def __str__(self) -> str:
        return f"{self.source}: {self.what}" + (f" ({self.where})" if self.where else "")


def card_secrets() -> tuple[set[str], set[str]]:
    """(every PAN, every PIN) the simulated cards carry."""
    pans, pins = set(), set()
    for profile in PROFILES.values():
        for app in profile.apps:
            pans.add(app.pan)
            if app.pin:
                pins.add(app.pin)
    if not pans:
        raise AssertionError("the card simulator carries no PAN: a scan would prove nothing")
    return pans, pins


def bcd(pan: str) -> bytes:
    """The PAN as the card stores it: packed BCD, F-padded to whole bytes."""
    return bytes.fromhex(pan + "F" * (len(pan) % 2))


def _pin_patterns(pin: str) -> list[re.Pattern[bytes]]:
    digits = pin.encode()
    length = f"{len(pin):X}".encode()
    return [
        re.compile(rb"(?i)pin[\"' :=]{1,4}" + digits + rb"(?![0-9])"),
        # ISO 9564 clear PIN field: control nibble (0-3), length nibble, the PIN, filler.
        re.compile(rb"(?i)(?<![0-9a-f])[0-3]" + length + digits + rb"[f0-9a-f]{2}"),
    ]


#: The key stores' own PIN files (``etika hsm init`` for the terminal, ``etika platform
#: key`` for the platform): 16 random digits, Luhn-valid one time in ten. They are the
#: tokens' secrets, not card data; the PAN and PIN checks still read them, only the
#: any-Luhn-run check does not.
LUHN_EXEMPT = frozenset({"hsm-pin", "hsm-so-pin", "token-pin", "token-so-pin"})


def scan_blob(blob: bytes, source: str, pans: Iterable[str] | None = None,
              pins: Iterable[str] | None = None, *, luhn: bool = True) -> list[Finding]:
    """Every card secret in ``blob`` (see the module docstring)."""
    if pans is None or pins is None:
        known_pans, known_pins = card_secrets()
        pans = known_pans if pans is None else pans
        pins = known_pins if pins is None else pins
    found: list[Finding] = []
    for pan in pans:
        if pan.encode() in blob:
            found.append(Finding(source, "PAN ascii"))
        # The last byte differs between 5A (F pad) and 57 (D separator): leave it out.
        packed = bcd(pan)
        if packed[:-1] in blob:
            found.append(Finding(source, "PAN bcd"))
    for match in _DIGIT_RUN.finditer(blob) if luhn else ():
        if luhn_valid(match.group().decode()):
            before = blob[max(0, match.start() - 24):match.start()]
            found.append(Finding(source, "Luhn-valid run",
                                 f"{len(match.group())} digits at {match.start()} after "
                                 f"{before!r}"))
    for pin in pins:
        if any(p.search(blob) for p in _pin_patterns(pin)):
            found.append(Finding(source, "PIN"))
    return sorted(set(found), key=str)


def _sqlite_values(path: Path) -> list[tuple[str, bytes]]:
    """Every text and blob value of a SQLite database, by table and column."""
    out: list[tuple[str, bytes]] = []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return out
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cursor.description]
            for row in cursor:
                for name, value in zip(names, row, strict=True):
                    if isinstance(value, str):
                        out.append((f"{table}.{name}", value.encode()))
                    elif isinstance(value, bytes):
                        out.append((f"{table}.{name}", value))
    except sqlite3.Error:
        pass
    finally:
        conn.close()
    return out


def scan_files(root: Path) -> tuple[list[Finding], int]:
    """Scan every file under ``root``; returns the findings and how many files were read."""
    pans, pins = card_secrets()
    findings: list[Finding] = []
    count = 0
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            count += 1
            blob = path.read_bytes()
            findings += scan_blob(blob, str(path), pans, pins,
                                  luhn=path.name not in LUHN_EXEMPT)
            if blob.startswith(b"SQLite format 3\x00"):
                for where, value in _sqlite_values(path):
                    for finding in scan_blob(value, f"{path} {where}", pans, pins):
                        findings.append(finding)
    return findings, count
