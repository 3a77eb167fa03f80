"""End-of-day reconciliation: each terminal's reported totals against the platform's own sums.

For one business date, every terminal that either sent an ``eod_totals`` report or has
counted transactions on the platform is checked, currency by currency. Every difference is
listed, none is summarised away:

``amount_mismatch`` / ``count_mismatch`` / ``count_and_amount_mismatch``
    both sides have the currency but disagree;
``missing_on_platform``
    the terminal reports sales in a currency of which the platform holds none (uplink lost,
    still queued on the terminal, or refused);
``missing_in_report``
    the platform holds sales in a currency the terminal's report leaves out;
``no_report``
    the platform holds sales for a terminal that sent no end-of-day report for the day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_sync.platform.records import Total
from edge_sync.platform.storage import PlatformStorage

__all__ = ["Line", "Mismatch", "PopMismatch", "Reconciliation", "reconcile", "reconcile_pop"]


@dataclass(frozen=True)
class Line:
    """Count and signed amount (minor units) on one side."""

    count: int
    amount_minor: int


@dataclass(frozen=True)
class Mismatch:
    """One terminal/currency whose two sides differ; a side is ``None`` when it has nothing."""

    terminal_id: str
    currency: str | None
    kind: str
    terminal: Line | None
    platform: Line | None


@dataclass
class Reconciliation:
    """The outcome for one business date."""

    business_date: str
    terminals_checked: list[str] = field(default_factory=list)
    matched: list[tuple[str, str]] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    #: The PoP ledger, compared record by record when it was given (``None``: not checked).
    pop_checked: int | None = None
    pop_mismatches: list[PopMismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.pop_mismatches

    def as_json(self) -> dict[str, Any]:
        return {
            "business_date": self.business_date,
            "ok": self.ok,
            "terminals_checked": self.terminals_checked,
            "matched": [
                {"terminal_id": terminal_id, "currency": currency}
                for terminal_id, currency in self.matched
            ],
            "mismatches": [asdict(mismatch) for mismatch in self.mismatches],
            "pop_checked": self.pop_checked,
            "pop_mismatches": [asdict(m) for m in self.pop_mismatches],
        }


@dataclass(frozen=True)
class PopMismatch:
    """A sale whose platform state and PoP ledger record disagree (one to one)."""

    terminal_id: str
    transaction_id: str | None
    pop_record_id: str | None
    kind: str  # pop_missing | pop_not_confirmed | pop_confirmed_for_failed_sale | pop_only
    platform_state: str | None
    pop_status: str | None


def reconcile_pop(storage: PlatformStorage, business_date: str,
                  records: list[dict[str, Any]], *, limit: int = 100_000
                  ) -> list[PopMismatch]:
    """Sales of ``business_date`` against the PoP ledger's records, one to one: a sale that
    counts has its record confirmed; one that does not has none confirmed; a confirmed sale
    record the platform knows of no sale for is reported too."""
    ledger = {str(r.get("record_id")): r for r in records
              if isinstance(r, dict) and r.get("kind") == "sale"}
    found: list[PopMismatch] = []
    for tx in storage.transactions(None, limit, business_date):
        details = tx.get("details") or {}
        if details.get("type", "sale") != "sale":
            continue
        record_id = details.get("pop_record_id")
        record = ledger.get(str(record_id)) if record_id else None
        status = record.get("status") if record else None
        if tx["counted"] and status != "confirmed":
            kind = "pop_missing" if record is None else "pop_not_confirmed"
            found.append(PopMismatch(tx["terminal_id"], tx["transaction_id"], record_id, kind,
                                     tx["state"], status))
        elif not tx["counted"] and status == "confirmed":
            found.append(PopMismatch(tx["terminal_id"], tx["transaction_id"], record_id,
                                     "pop_confirmed_for_failed_sale", tx["state"], status))
    every_known = {str((t.get("details") or {}).get("pop_record_id"))
                   for t in storage.transactions(None, limit)}
    for record_id, record in ledger.items():
        if record.get("status") == "confirmed" and record_id not in every_known:
            found.append(PopMismatch(str(record.get("terminal_id")), None, record_id,
                                     "pop_only", None, "confirmed"))
    return found


def _by_key(totals: list[Total]) -> dict[tuple[str, str], Line]:
    return {(t.terminal_id, t.currency): Line(t.count, t.amount_minor) for t in totals}


def reconcile(storage: PlatformStorage, business_date: str) -> Reconciliation:
    """Compare the terminals' end-of-day reports with the platform's sums for that date."""
    try:
        day = dt.date.fromisoformat(business_date).isoformat()
    except ValueError as exc:
        raise ValueError(f"not a date YYYY-MM-DD: {business_date!r}") from exc
    platform = _by_key(storage.transaction_totals(day))
    reported = _by_key(storage.reported_totals(day))
    reporters = storage.eod_reporters(day)
    result = Reconciliation(business_date=day)
    result.terminals_checked = sorted(reporters | {terminal_id for terminal_id, _ in platform})
    for terminal_id in result.terminals_checked:
        if terminal_id not in reporters:
            result.mismatches.append(
                Mismatch(terminal_id, None, "no_report", None, _sum(platform, terminal_id))
            )
            continue
        currencies = sorted(
            {c for t, c in platform if t == terminal_id}
            | {c for t, c in reported if t == terminal_id}
        )
        for currency in currencies:
            ours = platform.get((terminal_id, currency))
            theirs = reported.get((terminal_id, currency))
            kind = _compare(ours, theirs)
            if kind is None:
                result.matched.append((terminal_id, currency))
            else:
                result.mismatches.append(Mismatch(terminal_id, currency, kind, theirs, ours))
    return result


def _sum(lines: dict[tuple[str, str], Line], terminal_id: str) -> Line:
    mine = [line for (t, _), line in lines.items() if t == terminal_id]
    return Line(sum(x.count for x in mine), sum(x.amount_minor for x in mine))


def _compare(ours: Line | None, theirs: Line | None) -> str | None:
    # A zero line on one side and nothing on the other agree (no sales either way).
    empty = Line(0, 0)
    if ours is None and theirs is not None and theirs != empty:
        return "missing_on_platform"
    if theirs is None and ours is not None and ours != empty:
        return "missing_in_report"
    ours, theirs = ours or empty, theirs or empty
    if ours.count != theirs.count and ours.amount_minor != theirs.amount_minor:
        return "count_and_amount_mismatch"
    if ours.count != theirs.count:
        return "count_mismatch"
    if ours.amount_minor != theirs.amount_minor:
        return "amount_mismatch"
    return None
