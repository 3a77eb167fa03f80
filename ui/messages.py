"""What the workers tell the screens: each result of a services call comes back as one."""

from __future__ import annotations

from textual.message import Message

from terminal.payments.model import PaymentEvent, PaymentOutcome, RefundOutcome
from ui.facade import (
    DiagnosticRow,
    EndOfDayReport,
    Health,
    HistoryRow,
    PaymentDetailView,
    PrintResult,
    StatusSnapshot,
)

__all__ = [
    "DetailLoaded",
    "DiagnosticsLoaded",
    "EndOfDayDone",
    "HistoryLoaded",
    "Printed",
    "ReaderUpdated",
    "RefundDone",
    "SaleCancelled",
    "SaleFailed",
    "SaleFinished",
    "SaleProgress",
    "ServiceFailed",
    "StatusUpdated",
]


class SaleProgress(Message):
    """A step of the running sale (card in, PIN, bank...)."""

    def __init__(self, event: PaymentEvent) -> None:
        super().__init__()
        self.event = event


class SaleFinished(Message):
    def __init__(self, outcome: PaymentOutcome) -> None:
        super().__init__()
        self.outcome = outcome


class SaleCancelled(Message):
    """The cashier cancelled: the services finished or reversed what had started."""


class SaleFailed(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class ServiceFailed(Message):
    """A call other than the sale failed; ``reason`` is the project's own message."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class StatusUpdated(Message):
    def __init__(self, snapshot: StatusSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class ReaderUpdated(Message):
    """The card readers' state from the latest probe."""

    def __init__(self, reader: Health) -> None:
        super().__init__()
        self.reader = reader


class HistoryLoaded(Message):
    def __init__(self, rows: list[HistoryRow]) -> None:
        super().__init__()
        self.rows = rows


class DetailLoaded(Message):
    def __init__(self, detail: PaymentDetailView) -> None:
        super().__init__()
        self.detail = detail


class RefundDone(Message):
    def __init__(self, outcome: RefundOutcome) -> None:
        super().__init__()
        self.outcome = outcome


class DiagnosticsLoaded(Message):
    def __init__(self, rows: list[DiagnosticRow]) -> None:
        super().__init__()
        self.rows = rows


class EndOfDayDone(Message):
    def __init__(self, report: EndOfDayReport) -> None:
        super().__init__()
        self.report = report


class Printed(Message):
    def __init__(self, copy: str, result: PrintResult) -> None:
        super().__init__()
        self.copy = copy
        self.result = result
