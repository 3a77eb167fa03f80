"""Payments: the dual-transaction manager and what it uses (fraud scoring, receipts).

Import the modules directly (``terminal.payments.fraud``, ``terminal.payments.receipt``);
this package re-exports their public names for convenience.
"""

from __future__ import annotations

from terminal.payments.fraud import FraudAssessment, FraudInputs, FraudScorer
from terminal.payments.receipt import Receipt, render_text

__all__ = ["FraudAssessment", "FraudInputs", "FraudScorer", "Receipt", "render_text"]
