"""Receipts as data: what a merchant or customer copy says, and its text rendering.

A :class:`Receipt` is stored with its payment (``as_dict``/``from_dict`` round trip through
JSON) and printed by :func:`render_text` on a narrow roll (32 columns by default, French or
English labels). It can hold no clear card data: the card number field takes only a masked
PAN (``first6…last4`` at most, DESIGN §5 / PCI DSS 3.4) and refuses anything with more
visible digits, so a full PAN cannot reach a receipt, a database row or a printer.

The EMV fields are the ones a cardholder dispute needs (EMV 4.4 Book 4 §11.4 "receipt"):
AID (4F/9F06) and application label (50), TVR (95), TSI (9B), the application cryptogram
(9F26) and its type, and the issuer's authorisation code (89).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal

from terminal.errors import TerminalError
from terminal.money import Amount, currency

__all__ = [
    "Receipt",
    "ReceiptCopy",
    "ReceiptDataError",
    "render_text",
]

ReceiptCopy = Literal["merchant", "customer"]
EntryMode = Literal["contact", "contactless", "magstripe", "fallback", "manual"]
Cvm = Literal["offline_pin", "online_pin", "signature", "cdcvm", "no_cvm"]
CryptogramType = Literal["TC", "ARQC", "AAC"]
ReceiptKind = Literal["sale", "refund", "void"]

#: A masked PAN: up to 6 leading digits, a mask (``…`` or ``*``/``X`` run), the last 4.
_MASKED_PAN = re.compile(r"^(?:[0-9]{0,6})(?:…|[*Xx]{1,13})[0-9]{4}$")
_HEX = re.compile(r"^[0-9A-Fa-f]*$")


class ReceiptDataError(TerminalError, ValueError):
    """A receipt field is missing, malformed or would carry clear card data."""


def _card_number_in(text: str) -> bool:
    """A run of 12–19 digits that passes Luhn and does not start with 0 (ISO/IEC 7812: no
    card number does) — a merchant id such as ``MA0000000012345`` is not one."""
    from hsm.cards import luhn_valid

    return any(run[0] != "0" and luhn_valid(run)
               for run in re.findall(r"[0-9]{12,19}", text))


def _check_hex(name: str, value: str, lengths: tuple[int, ...]) -> None:
    if not isinstance(value, str) or not _HEX.fullmatch(value) or len(value) not in lengths:
        want = " or ".join(str(n) for n in lengths)
        raise ReceiptDataError(f"receipt field {name} must be {want} hex digits", field=name)


@dataclass(frozen=True, slots=True)
class Receipt:
    """One printed copy of a payment's receipt: data only, no layout."""

    merchant_name: str
    merchant_id: str
    terminal_id: str
    timestamp: datetime
    amount: Amount
    masked_pan: str
    aid: str
    app_label: str
    entry_mode: EntryMode
    cvm: Cvm
    tvr: str
    tsi: str
    cryptogram: str
    cryptogram_type: CryptogramType
    auth_code: str | None
    pop_reference: str | None
    copy: ReceiptCopy
    payment_id: str = ""
    kind: ReceiptKind = "sale"
    approved: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.masked_pan, str) or not _MASKED_PAN.fullmatch(self.masked_pan):
            # Never echo the value: it may be the clear PAN the check exists to stop.
            raise ReceiptDataError(
                "a receipt takes a masked PAN (first6…last4 at most), not a card number",
                field="masked_pan",
            )
        if not isinstance(self.amount, Amount):
            raise ReceiptDataError("receipt amount must be a terminal.money.Amount",
                                   field="amount")
        if not isinstance(self.timestamp, datetime) or self.timestamp.tzinfo is None:
            raise ReceiptDataError("receipt timestamp must be a timezone-aware datetime",
                                   field="timestamp")
        _check_hex("aid", self.aid, tuple(range(10, 33, 2)))
        _check_hex("tvr", self.tvr, (10,))
        _check_hex("tsi", self.tsi, (4,))
        _check_hex("cryptogram", self.cryptogram, (16,))
        for name, allowed in (("entry_mode", EntryMode), ("cvm", Cvm),
                              ("cryptogram_type", CryptogramType), ("copy", ReceiptCopy),
                              ("kind", ReceiptKind)):
            if getattr(self, name) not in allowed.__args__:  # type: ignore[attr-defined]
                raise ReceiptDataError(
                    f"receipt field {name} must be one of {', '.join(allowed.__args__)}",  # type: ignore[attr-defined]
                    field=name,
                )
        for name in ("merchant_name", "merchant_id", "terminal_id", "app_label"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ReceiptDataError(f"receipt field {name} must be non-empty text",
                                       field=name)
            if _card_number_in(value):
                raise ReceiptDataError(f"receipt field {name} looks like a card number",
                                       field=name)
        if self.auth_code is not None and not re.fullmatch(r"[0-9A-Za-z ]{1,6}",
                                                           self.auth_code):
            raise ReceiptDataError(
                "receipt field auth_code is 1 to 6 letters or digits (EMV tag 89)",
                field="auth_code")

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for storage with the payment (amount as minor units + code)."""
        data = asdict(self)
        data["timestamp"] = self.timestamp.astimezone(UTC).isoformat()
        data["amount"] = {"minor": self.amount.minor, "currency": self.amount.currency.code}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        """Inverse of :meth:`as_dict`; :class:`ReceiptDataError` when a field is wrong."""
        try:
            values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
            values["timestamp"] = datetime.fromisoformat(data["timestamp"])
            values["amount"] = Amount(int(data["amount"]["minor"]),
                                      currency(data["amount"]["currency"]))
            return cls(**values)
        except ReceiptDataError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ReceiptDataError(f"stored receipt is not readable: {exc}") from exc


_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "merchant": "TICKET COMMERCANT",
        "customer": "TICKET CLIENT",
        "keep": "A CONSERVER",
        "sale": "DEBIT",
        "refund": "REMBOURSEMENT",
        "void": "ANNULATION",
        "approved": "ACCEPTE",
        "declined": "REFUSE",
        "merchant_id": "Commercant",
        "terminal": "Terminal",
        "date": "Date",
        "card": "Carte",
        "aid": "AID",
        "entry": "Mode",
        "cvm": "Verif.",
        "tvr": "TVR",
        "tsi": "TSI",
        "cryptogram": "Crypto",
        "auth": "Autor.",
        "pop": "PoP",
        "pop_pending": "PoP en attente",
        "amount": "MONTANT",
        "contact": "contact",
        "contactless": "sans contact",
        "magstripe": "piste",
        "fallback": "secours piste",
        "manual": "saisie manuelle",
        "offline_pin": "code verifie",
        "online_pin": "code verifie en ligne",
        "signature": "signature",
        "cdcvm": "verif. sur mobile",
        "no_cvm": "sans verification",
        "payment": "Ref.",
    },
    "en": {
        "merchant": "MERCHANT COPY",
        "customer": "CUSTOMER COPY",
        "keep": "PLEASE RETAIN",
        "sale": "SALE",
        "refund": "REFUND",
        "void": "VOID",
        "approved": "APPROVED",
        "declined": "DECLINED",
        "merchant_id": "Merchant",
        "terminal": "Terminal",
        "date": "Date",
        "card": "Card",
        "aid": "AID",
        "entry": "Entry",
        "cvm": "CVM",
        "tvr": "TVR",
        "tsi": "TSI",
        "cryptogram": "AC",
        "auth": "Auth",
        "pop": "PoP",
        "pop_pending": "PoP pending",
        "amount": "AMOUNT",
        "contact": "chip",
        "contactless": "contactless",
        "magstripe": "swipe",
        "fallback": "fallback swipe",
        "manual": "manual entry",
        "offline_pin": "PIN verified",
        "online_pin": "PIN verified online",
        "signature": "signature",
        "cdcvm": "device verified",
        "no_cvm": "no verification",
        "payment": "Ref.",
    },
}

MIN_WIDTH = 24


def _pair(label: str, value: str, width: int) -> list[str]:
    """``label`` left and ``value`` right on one line, or the value wrapped under it."""
    if len(label) + 1 + len(value) <= width:
        return [label + " " * (width - len(label) - len(value)) + value]
    return [label[:width], *textwrap.wrap(value, width, break_on_hyphens=False)]


def render_text(receipt: Receipt, width: int = 32, locale: str = "fr") -> str:
    """The receipt as plain text lines of at most ``width`` columns (``\\n``-joined)."""
    if locale not in _LABELS:
        raise ValueError(f"receipt locale must be one of {', '.join(_LABELS)}, not {locale!r}")
    if not isinstance(width, int) or width < MIN_WIDTH:
        raise ValueError(f"receipt width must be at least {MIN_WIDTH} columns")
    t = _LABELS[locale]
    when = receipt.timestamp.astimezone(UTC)
    date = when.strftime("%d/%m/%Y %H:%M:%S") if locale == "fr" else when.strftime(
        "%Y-%m-%d %H:%M:%S")
    lines: list[str] = []
    for text in textwrap.wrap(receipt.merchant_name, width):
        lines.append(text.center(width).rstrip())
    lines.append(t[receipt.copy].center(width).rstrip())
    lines.append("-" * width)
    lines += _pair(t["merchant_id"], receipt.merchant_id.strip(), width)
    lines += _pair(t["terminal"], receipt.terminal_id, width)
    lines += _pair(t["date"], date + " UTC", width)
    if receipt.payment_id:
        lines += _pair(t["payment"], receipt.payment_id, width)
    lines.append("-" * width)
    lines += _pair(receipt.app_label, receipt.masked_pan, width)
    lines += _pair(t["aid"], receipt.aid.upper(), width)
    lines += _pair(t["entry"], t[receipt.entry_mode], width)
    lines += _pair(t["cvm"], t[receipt.cvm], width)
    lines += _pair(t["tvr"], receipt.tvr.upper(), width)
    lines += _pair(t["tsi"], receipt.tsi.upper(), width)
    lines += _pair(t["cryptogram"],
                   f"{receipt.cryptogram_type} {receipt.cryptogram.upper()}", width)
    if receipt.auth_code:
        lines += _pair(t["auth"], receipt.auth_code, width)
    lines += _pair(t["pop"], receipt.pop_reference or t["pop_pending"], width)
    lines.append("-" * width)
    lines.append(t[receipt.kind].center(width).rstrip())
    lines += _pair(t["amount"], str(receipt.amount), width)
    lines.append(t["approved" if receipt.approved else "declined"].center(width).rstrip())
    if receipt.copy == "customer":
        lines.append(t["keep"].center(width).rstrip())
    return "\n".join(lines) + "\n"
