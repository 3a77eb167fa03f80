"""The command-line argument types every ``etika`` command group shares.

One module, so that ``--timeout 0``, ``--port 70000`` or ``--version x`` are refused with
the same words whichever group (terminal, platform, simulators) parses them. Each function
is an ``argparse`` ``type=``: it returns the value or raises
:class:`argparse.ArgumentTypeError`, which argparse turns into a usage error (exit 2).

Like :mod:`etika_errors`, it sits outside the layered packages so that each of them may
import it; it imports nothing of ours.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
from typing import Protocol


class CommandGroups(Protocol):
    """What a command group's ``register(groups)`` receives: the ``etika`` subcommands, to
    add its own parser to (``argparse``'s subparsers action satisfies it)."""

    def add_parser(self, name: str, *, help: str | None = ...,
                   description: str | None = ...) -> argparse.ArgumentParser: ...

__all__ = [
    "CommandGroups",
    "aid_hex",
    "baud",
    "business_date",
    "card_bin",
    "key_version",
    "milliseconds",
    "not_empty",
    "port",
    "port_or_zero",
    "positive_int",
    "seconds",
    "session_expiry",
]


def not_empty(text: str) -> str:
    """Any text but an empty one (an empty path would silently mean the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def seconds(text: str) -> float:
    """A positive, finite number of seconds (``nan`` or ``inf`` would wait for ever)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def port(text: str) -> int:
    """A TCP port, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not between 1 and 65535")
    return value


def positive_int(text: str) -> int:
    """A whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def session_expiry(text: str) -> int:
    """MQTT v5 session expiry in seconds: a four-byte integer (0xFFFFFFFF: never expires)."""
    value = positive_int(text)
    if value > 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"at most 4294967295 seconds, got {value}")
    return value


def key_version(text: str) -> int:
    """A key version: 1, 2, ..."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a key version (1, 2, ...)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"key versions start at 1, got {value}")
    return value


def baud(text: str) -> int:
    """A serial baud rate (a positive whole number, e.g. 9600)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a baud rate (e.g. 9600)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a baud rate (e.g. 9600)")
    return value


def port_or_zero(text: str) -> int:
    """A TCP port, or 0 for "any free port" (the simulators print the one they got)."""
    return 0 if text.strip() == "0" else port(text)


def milliseconds(text: str) -> int:
    """A delay in whole milliseconds, 0 to one day."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of ms") from None
    if not 0 <= value <= 86_400_000:
        raise argparse.ArgumentTypeError("the delay must be between 0 and 86400000 ms")
    return value


def business_date(text: str) -> dt.date:
    """A business day, ``YYYY-MM-DD``."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-22") from None


def card_bin(text: str) -> str:
    """A BIN: the first 6 to 8 digits of a card number."""
    if not (text.isdigit() and 6 <= len(text) <= 8):
        raise argparse.ArgumentTypeError("a BIN is the first 6 to 8 digits of the card")
    return text


def aid_hex(text: str) -> str:
    """An application identifier in hex, 5 to 16 bytes (ISO/IEC 7816-5)."""
    try:
        size = len(bytes.fromhex(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hexadecimal") from None
    if not 5 <= size <= 16:
        raise argparse.ArgumentTypeError(f"an AID is 5 to 16 bytes, {text!r} is {size}")
    return text
