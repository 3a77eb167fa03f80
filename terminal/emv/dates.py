"""EMV dates: application dates (YYMMDD) and certificate expiry (MMYY).

Both carry a two-digit year. EMV 4.4 Book 3 §5.2.1.2 (note) and Book 2 §5.3 / §6.4 use
the same window: ``00``–``49`` are 2000–2049, ``50``–``99`` are 1950–1999. A value that is
not BCD or not a real date gives ``None``; callers decide what that means, and never
treat it as "valid" (a malformed date must not fail open).
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date

__all__ = ["application_date", "certificate_expiry", "full_year"]


def full_year(yy: int) -> int:
    """The four-digit year of a two-digit EMV year (00–49 → 20xx, 50–99 → 19xx)."""
    if not 0 <= yy <= 99:
        raise ValueError(f"a two-digit year is 0 to 99, got {yy}")
    return (2000 if yy < 50 else 1900) + yy


def application_date(raw: bytes | None) -> date | None:
    """YYMMDD n6 (5F24, 5F25, 9A) → date; absent, not BCD or impossible → ``None``."""
    if raw is None or len(raw) != 3 or not raw.hex().isdigit():
        return None
    text = raw.hex()
    yy, mm, dd = int(text[0:2]), int(text[2:4]), int(text[4:6])
    try:
        return date(full_year(yy), mm, dd)
    except ValueError:
        return None


def certificate_expiry(mmyy: bytes) -> date | None:
    """The last day a certificate with expiry MMYY is valid (Book 2 §5.3 step 8, §6.4 step 8).

    Not BCD, month outside 1–12 or not two bytes → ``None``.
    """
    if len(mmyy) != 2 or not mmyy.hex().isdigit():
        return None
    text = mmyy.hex()
    month, year = int(text[:2]), full_year(int(text[2:]))
    if not 1 <= month <= 12:
        return None
    return date(year, month, monthrange(year, month)[1])
