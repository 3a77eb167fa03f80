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

Given the ledgers, each payment of the day is also matched one to one with its PoP record
(:func:`reconcile_pop`) and with what the PSPs booked for it (:func:`reconcile_psp`): the
platform's mirror of the terminal, the PSP and the PoP back end must tell the same story.
PSP differences (:class:`PspMismatch`):

``psp_missing``
    a sale that counts (the terminal took the money) that no PSP charged;
``double_charge``
    a payment charged more than once (under its own key and its advice's, or at two PSPs);
``amount_mismatch``
    the PSP charged another amount (or currency) than the sale's;
``psp_charged_for_failed_sale``
    a sale that does not count (declined, cancelled, reversed, voided) still charged;
``refund_mismatch``
    what the PSP gave back for a payment differs from the approved refunds the platform holds;
``psp_only``
    a charge for a key the platform knows no payment for.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_sync.platform.records import Total
from edge_sync.platform.storage import PlatformStorage
from edge_sync.transaction_keys import psp_keys

__all__ = ["Line", "Mismatch", "PopMismatch", "PspMismatch", "Reconciliation", "reconcile",
           "reconcile_pop", "reconcile_psp"]


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
    #: The PSPs' ledger entries, compared payment by payment when given (``None``: not).
    psp_checked: int | None = None
    psp_mismatches: list[PspMismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.pop_mismatches and not self.psp_mismatches

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
            "psp_checked": self.psp_checked,
            "psp_mismatches": [asdict(m) for m in self.psp_mismatches],
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
                  records: list[dict[str, Any]]) -> list[PopMismatch]:
    """Sales of ``business_date`` against the PoP ledger's records, one to one: a sale that
    counts has its record confirmed; one that does not has none confirmed; a confirmed sale
    record the platform knows of no sale for is reported too. Every sale of the day is
    read (:meth:`PlatformStorage.day_transactions`, no cap); a record no sale of the day
    names is looked up by its id."""
    ledger = {str(r.get("record_id")): r for r in records
              if isinstance(r, dict) and r.get("kind") == "sale"}
    found: list[PopMismatch] = []
    named: set[str] = set()
    for tx in storage.day_transactions(business_date):
        details = tx.get("details") or {}
        if details.get("type", "sale") != "sale":
            continue
        record_id = details.get("pop_record_id")
        if record_id:
            named.add(str(record_id))
        record = ledger.get(str(record_id)) if record_id else None
        status = record.get("status") if record else None
        if tx["counted"] and status != "confirmed":
            kind = "pop_missing" if record is None else "pop_not_confirmed"
            found.append(PopMismatch(tx["terminal_id"], tx["transaction_id"], record_id, kind,
                                     tx["state"], status))
        elif not tx["counted"] and status == "confirmed":
            found.append(PopMismatch(tx["terminal_id"], tx["transaction_id"], record_id,
                                     "pop_confirmed_for_failed_sale", tx["state"], status))
    unexplained = [record_id for record_id, record in ledger.items()
                   if record.get("status") == "confirmed" and record_id not in named]
    named.update(str((tx.get("details") or {}).get("pop_record_id"))
                 for tx in storage.transactions_by_pop_record(unexplained))
    for record_id in unexplained:
        if record_id not in named:
            found.append(PopMismatch(str(ledger[record_id].get("terminal_id")), None,
                                     record_id, "pop_only", None, "confirmed"))
    return found


@dataclass(frozen=True)
class PspMismatch:
    """A payment whose platform mirror and PSP ledger disagree (one to one); amounts in
    minor units, ``None`` where a side has nothing."""

    terminal_id: str | None
    transaction_id: str | None
    psp_keys: tuple[str, ...]
    kind: str  # see the module docstring
    platform_state: str | None
    platform_amount_minor: int | None
    psp_amount_minor: int | None


#: Ledger states in which the PSP holds the customer's money (wholly or partly refunded).
_CHARGED = frozenset({"held", "captured", "refunded"})


def _charged(entry: dict[str, Any]) -> bool:
    return (entry.get("kind") != "refund" and entry.get("state") in _CHARGED
            and entry.get("code", "00") == "00")


def _charge_of(entry: dict[str, Any]) -> int:
    return int(entry.get("captured") or entry.get("amount_minor") or 0)


def reconcile_psp(storage: PlatformStorage, business_date: str,
                  entries: list[dict[str, Any]], *, batch: int = 500) -> list[PspMismatch]:
    """Sales of ``business_date`` against the PSPs' ledger entries (every PSP's, merged),
    payment by payment: a sale that counts is charged once, for its amount, and what was
    given back equals its approved refunds; a sale that does not count holds no charge; a
    charge no payment explains is reported too. An offline approval is booked under its
    advice's key (:func:`edge_sync.transaction_keys.advice_key`).

    Every sale of the day is read (:meth:`PlatformStorage.day_transactions`, no cap), in
    batches of ``batch`` whose refunds (of any date) are looked up by the sale; a charge no
    sale of the day explains is looked up by its key among the other days' payments."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        if isinstance(entry, dict) and entry.get("key"):
            by_key.setdefault(str(entry["key"]), []).append(entry)
    found: list[PspMismatch] = []
    explained: set[str] = set()
    sales: list[dict[str, Any]] = []
    for tx in storage.day_transactions(business_date):
        if (tx.get("details") or {}).get("type", "sale") == "sale":
            sales.append(tx)
        if len(sales) >= batch:
            _check_sales(storage, sales, by_key, explained, found)
            sales = []
    _check_sales(storage, sales, by_key, explained, found)
    unexplained = [key for key, booked in by_key.items()
                   if key not in explained and any(_charged(e) for e in booked)]
    for tx in storage.transactions_by_psp_key(unexplained):
        if (tx.get("details") or {}).get("type", "sale") == "sale":
            explained.update(psp_keys(str(tx["transaction_id"])))
    for key in sorted(unexplained):
        if key not in explained:
            found.append(PspMismatch(None, None, (key,), "psp_only", None, None,
                                     sum(_charge_of(e) for e in by_key[key] if _charged(e))))
    return found


def _check_sales(storage: PlatformStorage, sales: list[dict[str, Any]],
                 by_key: dict[str, list[dict[str, Any]]], explained: set[str],
                 found: list[PspMismatch]) -> None:
    """One batch of the day's sales against the PSP entries under their keys."""
    if not sales:
        return
    refunds: dict[str, int] = {}
    for refund in storage.refunds_of(str(tx["transaction_id"]) for tx in sales):
        details = refund.get("details") or {}
        if details.get("type") == "refund" and refund["state"] == "approved":
            refers_to = str(details.get("refers_to"))
            refunds[refers_to] = refunds.get(refers_to, 0) - int(refund["amount_minor"])
    for tx in sales:
        keys = psp_keys(str(tx["transaction_id"]))
        explained.update(keys)
        charges = [e for key in keys for e in by_key.get(key, []) if _charged(e)]
        charged = sum(_charge_of(e) for e in charges)
        given_back = sum(int(e.get("refunded") or 0) for e in charges)

        def report(kind: str, psp_amount: int | None, tx: dict[str, Any] = tx,
                   keys: tuple[str, ...] = keys) -> None:
            found.append(PspMismatch(tx["terminal_id"], tx["transaction_id"], keys, kind,
                                     tx["state"], tx["amount_minor"], psp_amount))

        if not tx["counted"]:
            if charges:
                report("psp_charged_for_failed_sale", charged)
            continue
        if not charges:
            report("psp_missing", None)
            continue
        if len(charges) > 1:
            report("double_charge", charged)
        elif charged != tx["amount_minor"] or any(
                str(e.get("currency", tx["currency"])) != tx["currency"] for e in charges):
            report("amount_mismatch", charged)
        if given_back != refunds.get(str(tx["transaction_id"]), 0):
            found.append(PspMismatch(tx["terminal_id"], tx["transaction_id"], keys,
                                     "refund_mismatch", tx["state"],
                                     refunds.get(str(tx["transaction_id"]), 0), given_back))


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
