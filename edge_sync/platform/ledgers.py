"""The other parties' ledgers that ``etika platform reconcile`` compares with the platform's.

The PoP back end answers ``GET <url>/ledger/records``; each PSP (the simulators, or a
gateway's reconciliation export) ``GET <url>/ledger/summary``. Every mistake here is a
one-line error naming the option: a bad URL is a usage error (argparse type), an
unreachable or malformed ledger a :class:`PlatformError`.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlsplit

from edge_sync.platform.errors import PlatformError

__all__ = ["ledger_url", "pop_records", "psp_entries"]


def ledger_url(text: str) -> str:
    """An ``http(s)://host[:port]`` URL for ``--pop-url`` / ``--psp-url``: a typo is a usage
    error (exit 2) here, not an httpx exception later."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http:// or https:// URL with a host")
    return text


def pop_records(url: str) -> list[dict[str, Any]]:
    """The PoP back end's records, each with its status; one-line errors."""
    import httpx

    target = url.rstrip("/") + "/ledger/records"
    try:
        answer = httpx.get(target, timeout=30)
        answer.raise_for_status()
        body = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise PlatformError(f"--pop-url: cannot read the PoP ledger at {target}: {exc}"
                            ) from exc
    records = body.get("records", body) if isinstance(body, dict) else body
    if not isinstance(records, list):
        raise PlatformError(f"--pop-url: {target} did not answer a list of records")
    return [r for r in records if isinstance(r, dict)]


def psp_entries(url: str) -> list[dict[str, Any]]:
    """One PSP's ledger entries (the simulators' ``/ledger/summary``); one-line errors."""
    import httpx

    target = url.rstrip("/")
    if not target.endswith("/ledger/summary"):
        target += "/ledger/summary"
    try:
        answer = httpx.get(target, timeout=30)
        answer.raise_for_status()
        body = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise PlatformError(f"--psp-url: cannot read the PSP ledger at {target}: {exc}"
                            ) from exc
    entries = body.get("entries") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise PlatformError(f"--psp-url: {target} did not answer a ledger "
                            '({"entries": [...]})')
    # An entry the comparison cannot read is refused, never skipped: a skipped charge
    # would make a double charge or a charge for a failed sale look reconciled.
    for index, entry in enumerate(entries):
        where = f"--psp-url: {target} entries[{index}]"
        if not isinstance(entry, dict):
            raise PlatformError(f"{where} is not an object")
        if not isinstance(entry.get("key"), str) or not entry["key"]:
            raise PlatformError(f"{where} has no key (the payment's idempotency key)")
        for name in ("amount_minor", "captured", "refunded"):
            value = entry.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise PlatformError(f"{where}.{name} must be a whole number of minor units, "
                                    f"not {value!r}")
    return entries
