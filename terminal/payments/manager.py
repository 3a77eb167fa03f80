"""The dual-transaction manager: a sale from card to receipt (seed 001 §2.3–2.4, §3.2–3.3).

One sale::

    created ─ card session (kernel: selection … CVM with the PIN pad … GENERATE AC 1)
            ─ ARQC → tokenise (hsm) → fraud score → route → authorising
                     ─ financial authorisation ∥ PoP submission (one TaskGroup, one deadline)
            ─ GENERATE AC 2 with the issuer's answer → finalisation

and its endings (DESIGN §6):

===================================  ==========================================================
legs                                 the payment ends, and what else happens
===================================  ==========================================================
approved, PoP confirmed              ``completed``; token-activation event queued (§3.3)
approved, PoP failed / unreachable   ``pop_deferred``; the PoP record stays in the outbox and the
                                     payment completes when it is confirmed (fallback 2)
declined (or the card's AAC)         ``financial_declined``; the PoP record is cancelled
host down / breakers open            offline decision: the card's TC within the profile's
                                     ``limits.toml`` → approved offline, advice queued; else
                                     declined with the reason (fallback 1)
deadline passed, financial pending   ``cancelled``: reversal queued for the PSP, PoP cancel
                                     (fallback 3). A PoP leg still pending at the deadline is
                                     "unreachable": the money leg decides, the PoP record waits.
approved, card AAC at GENERATE AC 2  ``reversal_pending`` → ``reversed`` (reversal sent at once
                                     and kept in the outbox until acknowledged); PoP cancelled
PoP rejected for an approved sale    ``needs_reconciliation``; alert to the platform (fallback 4)
===================================  ==========================================================

Every transition is one ``record_change`` (state + outbox rows + journal entry) with the
attempts and the fraud check of the same step. The payment UUID is written before anything
is sent and is the idempotency key of every retry (STAN/RRN context for ISO 8583,
``Idempotency-Key`` for REST); the PoP record id is the PoP back end's.

This module runs the sale up to the card's last answer (preparation, the legs, the offline
limits); :mod:`terminal.payments.finalise` turns what happened into one of the endings above,
and :mod:`terminal.payments.outcome` reads a payment back for its callers.

SQLite writes run inline: each is one short fsync'd transaction on the store's connection
(the store is opened with ``check_same_thread=False``); the card, the PSPs and the PoP back
end are awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from drivers.base import CardReader
from edge_sync.connectors import Router, RoutingKey
from edge_sync.connectors.errors import NoRouteError
from edge_sync.pop import PopClient, PopRecord
from etika_errors import EtikaError
from hsm import CardKeyStore, TokenisedCard
from terminal.emv.config import KernelConfig, TransactionData
from terminal.emv.cvm import PinCallback
from terminal.emv.errors import CardDataError
from terminal.emv.kernel import EmvKernel
from terminal.emv.offline_pin import OfflinePinCallback
from terminal.emv.selection import Chooser, choose_first
from terminal.money import Amount
from terminal.payments import ledger
from terminal.payments.finalise import SaleInProgress, abandon, finalise
from terminal.payments.fraud import FraudAssessment, FraudInputs, FraudScorer
from terminal.payments.legs import DualLegs, Prepared
from terminal.payments.messages import json_text
from terminal.payments.model import (
    EventSink,
    PaymentEvent,
    PaymentOutcome,
    SaleRequest,
)
from terminal.payments.outcome import outcome_from_row, token_activation
from terminal.profile import Profile
from terminal.services.psp import (
    network_for_aid,
)
from terminal.store import StateChange, Store
from terminal.store.changes import record_change

__all__ = ["PaymentManager", "outcome_from_row", "token_activation"]

def _now() -> datetime:
    return datetime.now(UTC)


class PaymentManager:
    """Runs sales as dual transactions on a card reader; see the module docstring."""

    def __init__(
        self,
        *,
        profile: Profile,
        store: Store,
        card_keys: CardKeyStore,
        router: Router,
        pop: PopClient,
        kernel_config: KernelConfig,
        pin_entry: PinCallback | None = None,
        offline_pin: OfflinePinCallback | None = None,
        clock: Callable[[], datetime] = _now,
        locale: str = "fr",
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.profile = profile
        self.store = store
        self.card_keys = card_keys
        self.router = router
        self.pop = pop
        self.kernel_config = kernel_config
        self.pin_entry = pin_entry
        self.offline_pin = offline_pin
        self.clock = clock
        self.locale = locale
        self.deadline_s = profile.payments.deadline_ms / 1000
        self.fraud = FraudScorer(profile.fraud)
        #: Told the name of each step of a sale or refund as it passes (``created``,
        #: ``authorising``, ``legs_answered``, ``legs_done``, ``finalised``,
        #: ``refund_requested``, ``refund_answered``): tracing, and the crash tests' kill
        #: points.
        self.on_step = on_step or (lambda _step: None)

    # --- the sale ----------------------------------------------------------------------

    async def sale(self, request: SaleRequest, reader: CardReader, *,
                   chooser: Chooser = choose_first,
                   on_event: EventSink | None = None) -> PaymentOutcome:
        """Take one payment: wait for the card, run both legs, finalise, build receipts."""
        emit = on_event or (lambda _e: None)
        sale = SaleInProgress(uuid.uuid4(), request)
        amount = request.amount
        self.store.record(StateChange(
            "payment", str(sale.payment_id), "created",
            fields={"amount_minor": amount.minor, "currency": amount.currency.code,
                    "order_ref": request.order_ref,
                    "payment_method": "contactless" if request.contactless else "card",
                    "entry_mode": "contactless" if request.contactless else "contact"},
        ))
        self.on_step("created")
        emit(PaymentEvent("waiting_card", "present the card", sale.payment_id))

        def on_leg(kind: str, detail: str) -> None:
            emit(PaymentEvent(kind, detail, sale.payment_id))

        legs = DualLegs(
            payment_id=sale.payment_id, amount=amount, router=self.router, pop=self.pop,
            network_of=lambda aid: network_for_aid(self.profile, aid),
            prepare=lambda pan, expiry, network, candidates: self.prepare(
                sale, pan, expiry, network, candidates, submit_pop=True),
            deadline_s=self.deadline_s, contactless=request.contactless, on_event=on_leg,
            on_step=self.on_step,
        )
        kernel = EmvKernel(self.kernel_config, pin_entry=self.pin_entry, authoriser=legs,
                           chooser=chooser, offline_pin=self.offline_pin)
        data = TransactionData(amount=amount.minor, currency_numeric=amount.currency.numeric,
                               currency_exponent=amount.currency.exponent)
        try:
            name = await reader.wait_for_card(request.reader, timeout=request.card_timeout_s)
            emit(PaymentEvent("card_in", name, sale.payment_id))
            session = await reader.connect(name)
            try:
                emit(PaymentEvent("reading", "reading the card", sale.payment_id))
                result = await kernel.transact(session, data, contactless=request.contactless)
            finally:
                # A card already gone cannot be closed cleanly: that is no news.
                with contextlib.suppress(EtikaError):
                    await session.close()
        except EtikaError as exc:
            # The card session ended early (no card, card removed, a card or reader error):
            # a bug is not caught here, and recovery finishes what it left.
            return await abandon(self, sale, legs, exc, emit)
        self.on_step("legs_done")
        emit(PaymentEvent("finalising", result.decision, sale.payment_id))
        outcome = await finalise(self, sale, legs, result)
        self.on_step("finalised")
        emit(PaymentEvent("done", outcome.state, sale.payment_id))
        return outcome

    async def prepare(self, sale: SaleInProgress, pan: str, expiry: str, network: str,
                       candidates: list[str], *, submit_pop: bool,
                       issuer_country: int | None = None) -> Prepared:
        """Tokenise, score, check offline limits, and record ``authorising`` (before any
        send) with the fraud check and the PoP record, in one transaction."""
        amount = sale.request.amount
        try:
            card = await asyncio.to_thread(self.card_keys.tokenise, pan, expiry)
        except ValueError as exc:
            # The card's own PAN or expiry is not one (fails Luhn, month 13): the card's
            # data error, which ends the session cleanly. The message masks the PAN.
            raise CardDataError(f"the card's PAN or expiry cannot be tokenised: {exc}",
                                tag=0x5A) from None
        sale.card, sale.network = card, network
        # A sale prepared without its online legs is the card's offline approval.
        exposure = self.offline_exposure(sale)
        assessment = self._score(card, pan, amount, issuer_country, exposure,
                                 offline=not submit_pop)
        sale.fraud = assessment
        offline_ok, offline_reason = self.offline_allowed(amount, exposure)
        record: PopRecord | None = None
        go = assessment.decision != "decline" and bool(candidates)
        reason = ""
        if assessment.decision == "decline":
            reason = f"declined by the fraud rules (score {assessment.score:.2f})"
        elif not candidates:
            reason = "no acquirer route accepts this card"
        with self.store.transaction() as conn:
            if go and submit_pop:
                record = self.new_pop_record(conn, sale, card)
                record_change(conn, StateChange(
                    "pop_transaction", str(record.record_id), "pending",
                    fields={"payment_id": str(sale.payment_id), "sequence": record.sequence},
                ))
            fields = {"card_token": card.token, "pan_masked": card.masked_pan,
                      "vault_blob": card.vault_blob, "key_version": card.vault_key_version,
                      "card_fingerprint": card.fingerprint, "network": network,
                      "route_connectors": json_text(candidates)}
            if go and submit_pop:
                record_change(conn, StateChange("payment", str(sale.payment_id),
                                                "authorising", fields=fields,
                                                action="authorise"))
            else:
                # The card is known before the payment moves: an event in the journal,
                # the row updated in the same transaction.
                record_change(conn, StateChange("payment_card", str(sale.payment_id), None,
                                                fields={"pan_masked": card.masked_pan,
                                                        "network": network},
                                                action="card_read"))
                conn.execute(
                    "UPDATE payments SET card_token=?, pan_masked=?, vault_blob=?, "
                    "key_version=?, card_fingerprint=?, network=?, route_connectors=? "
                    "WHERE id=?",
                    (card.token, card.masked_pan, card.vault_blob, card.vault_key_version,
                     card.fingerprint, network, json_text(candidates), str(sale.payment_id)))
            ledger.insert_fraud_check(conn, sale.payment_id, assessment.as_row())
        sale.pop_record = record
        sale.offline_refusal = offline_reason
        if go and submit_pop:
            self.on_step("authorising")
        sale.prepared = Prepared(go, reason, record, offline_allowed=offline_ok)
        return sale.prepared

    def new_pop_record(self, conn: sqlite3.Connection, sale: SaleInProgress,
                       card: TokenisedCard) -> PopRecord:
        term = self.profile.terminal
        return PopRecord(
            record_id=uuid.uuid4(), payment_id=sale.payment_id, kind="sale",
            terminal_id=term.terminal_id, merchant_id=term.merchant_id,
            amount_minor=sale.request.amount.minor,
            currency=sale.request.amount.currency.code, card_token=card.token,
            created_at=self.clock().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            sequence=ledger.next_pop_sequence(conn),
        )

    def offline_exposure(self, sale: SaleInProgress) -> ledger.OfflineExposure:
        if sale.exposure is None:
            sale.exposure = ledger.offline_exposure(
                self.store, sale.request.amount.currency.code, self.clock())
        return sale.exposure

    def _score(self, card: TokenisedCard, pan: str, amount: Amount,
               issuer_country: int | None, exposure: ledger.OfflineExposure, *,
               offline: bool = False) -> FraudAssessment:
        settings = self.profile.fraud
        since = self.clock() - timedelta(seconds=settings.velocity_window_s)
        history = ledger.card_history(self.store, card.fingerprint, since)
        count, mean, stddev = ledger.merchant_amount_stats(self.store, amount.currency.code)
        fingerprints, bins = self._blacklist()
        return self.fraud.score(FraudInputs(
            card_fingerprint=card.fingerprint, bin=pan[:8], amount_minor=amount.minor,
            currency=amount.currency.code, merchant_country=self.profile.terminal.country_code,
            card_country=issuer_country, card_count_in_window=history.count,
            card_declines_in_window=history.declines, merchant_history_count=count,
            merchant_amount_mean_minor=mean, merchant_amount_stddev_minor=stddev,
            offline=offline, offline_exposure_minor=exposure.total_minor,
            offline_limit_minor=self.profile.offline.max_cumulative.get(amount.currency.code),
            blacklisted_fingerprints=fingerprints, blacklisted_bin_ranges=bins,
        ))

    def _blacklist(self) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
        """Fingerprints and BIN prefixes pushed by the platform (``blacklist`` table)."""
        try:
            rows = self.store.connection.execute(
                "SELECT entry_type, value FROM blacklist").fetchall()
        except sqlite3.OperationalError:  # a store without the table: no blacklist yet
            return frozenset(), ()
        fingerprints = frozenset(r[1] for r in rows if r[0] == "fingerprint")
        bins = tuple((r[1], r[1]) for r in rows if r[0] == "bin" and str(r[1]).isdigit())
        return fingerprints, bins

    def offline_allowed(self, amount: Amount,
                         exposure: ledger.OfflineExposure) -> tuple[bool, str]:
        """Whether the terminal may carry this payment on its own (``limits.toml``)."""
        limits = self.profile.offline
        code = amount.currency.code
        per_tx = limits.max_per_transaction.get(code)
        total = limits.max_cumulative.get(code)
        if per_tx is None or total is None:
            return False, f"offline approval is not allowed in {code} (no limit in limits.toml)"
        if amount.minor > per_tx:
            return False, (f"offline limit per transaction is {Amount(per_tx, amount.currency)}"
                           " and the host cannot be reached")
        if exposure.total_minor + amount.minor > total:
            return False, (f"offline total in {code} would pass "
                           f"{Amount(total, amount.currency)}; sync first")
        if exposure.count + 1 > limits.max_count:
            return False, f"{exposure.count} offline approvals are waiting to sync (limit " \
                          f"{limits.max_count})"
        if exposure.oldest_age_s is not None and exposure.oldest_age_s > limits.max_age_s:
            return False, "the oldest offline approval is older than the limit; sync first"
        return True, ""

    def candidates_for(self, pan: str, aid: bytes, network: str, amount: Amount) -> list[str]:
        key = RoutingKey(network=network, currency=amount.currency.code,
                         amount_minor=amount.minor, aid=aid.hex().upper(), bin=pan[:8])
        try:
            return self.router.candidates(key)
        except NoRouteError:
            return []

    def route_of(self, sale: SaleInProgress) -> list[str]:
        row = ledger.payment_row(self.store, str(sale.payment_id))
        route = row["route_connectors"] if row else None
        return list(route) if isinstance(route, list) else []

    # --- reading back ------------------------------------------------------------------

    def outcome(self, payment_id: str) -> PaymentOutcome:
        row = ledger.payment_row(self.store, payment_id)
        assert row is not None
        return outcome_from_row(self.store, row, self.locale)
