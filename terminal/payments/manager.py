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

SQLite writes run inline: each is one short fsync'd transaction on the store's connection
(the store is opened with ``check_same_thread=False``); the card, the PSPs and the PoP back
end are awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from drivers.base import CardReader
from edge_sync.connectors import Router, RoutingKey
from edge_sync.connectors.base import Outcome, PspReference
from edge_sync.connectors.errors import NoRouteError, PspError
from edge_sync.json_types import JsonValue
from edge_sync.pop import PopClient, PopRecord
from etika_errors import EtikaError
from hsm import CardKeyStore, TokenisedCard
from terminal.emv.config import KernelConfig, TransactionData
from terminal.emv.cvm import PinCallback
from terminal.emv.errors import EmvError
from terminal.emv.kernel import EmvKernel, TransactionResult
from terminal.emv.offline_pin import OfflinePinCallback
from terminal.emv.pan import expiry_from_card, pan_from_card
from terminal.emv.selection import Chooser, choose_first
from terminal.logs import mask_pan_text
from terminal.money import Amount
from terminal.money import currency as currency_of
from terminal.payments import ledger
from terminal.payments.advice import advice_id
from terminal.payments.fraud import FraudAssessment, FraudInputs, FraudScorer
from terminal.payments.legs import DualLegs, FinancialLeg, PopLeg, Prepared, submit_pop
from terminal.payments.messages import alert_message, json_text, transaction_uplink
from terminal.payments.model import (
    APPROVED_STATES,
    EventSink,
    PaymentEvent,
    PaymentOutcome,
    SaleRequest,
)
from terminal.payments.receipt import Receipt, render_text
from terminal.profile import Profile
from terminal.services.psp import (
    REVERSAL_PRIORITY,
    amount_payload,
    network_for_aid,
    psp_amount,
    reversal_payload,
)
from terminal.store import OutboxMessage, StateChange, Store
from terminal.store.changes import record_change

__all__ = ["PaymentManager"]

POP_PRIORITY = 60
#: A reversal or advice the PSP has not acknowledged after this long needs a person.
SETTLE_TTL_S = 7 * 86400.0
_KERNEL_CVMS = {"online_pin": "online_pin", "offline_pin": "offline_pin",
                "offline_enciphered_pin": "offline_pin", "signature": "signature",
                "cdcvm": "cdcvm"}
_APPROVED_DECISIONS = frozenset({"approved_online", "approved_offline",
                                 "approved_unable_online"})


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Sale:
    """What one sale gathered on its way, for the finalisation."""

    payment_id: uuid.UUID
    request: SaleRequest
    card: TokenisedCard | None = None
    network: str = ""
    prepared: Prepared | None = None
    fraud: FraudAssessment | None = None
    pop_record: PopRecord | None = None
    #: Why the terminal may not approve this sale on its own, when it may not.
    offline_refusal: str = ""
    #: Offline approvals still to sync in the sale's currency, read once per sale (fraud
    #: score and offline limits both use it; nothing the sale does changes it).
    exposure: ledger.OfflineExposure | None = None


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
        sale = _Sale(uuid.uuid4(), request)
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
            prepare=lambda pan, expiry, network, candidates: self._prepare(
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
            return await self._abandon(sale, legs, exc, emit)
        self.on_step("legs_done")
        emit(PaymentEvent("finalising", result.decision, sale.payment_id))
        outcome = await self._finalise(sale, legs, result)
        self.on_step("finalised")
        emit(PaymentEvent("done", outcome.state, sale.payment_id))
        return outcome

    async def _prepare(self, sale: _Sale, pan: str, expiry: str, network: str,
                       candidates: list[str], *, submit_pop: bool,
                       issuer_country: int | None = None) -> Prepared:
        """Tokenise, score, check offline limits, and record ``authorising`` (before any
        send) with the fraud check and the PoP record, in one transaction."""
        amount = sale.request.amount
        card = await asyncio.to_thread(self.card_keys.tokenise, pan, expiry)
        sale.card, sale.network = card, network
        # A sale prepared without its online legs is the card's offline approval.
        exposure = self._exposure(sale)
        assessment = self._score(card, pan, amount, issuer_country, exposure,
                                 offline=not submit_pop)
        sale.fraud = assessment
        offline_ok, offline_reason = self._offline_allowed(amount, exposure)
        record: PopRecord | None = None
        go = assessment.decision != "decline" and bool(candidates)
        reason = ""
        if assessment.decision == "decline":
            reason = f"declined by the fraud rules (score {assessment.score:.2f})"
        elif not candidates:
            reason = "no acquirer route accepts this card"
        with self.store.transaction() as conn:
            if go and submit_pop:
                record = self._pop_record(conn, sale, card)
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

    def _pop_record(self, conn: Any, sale: _Sale, card: TokenisedCard) -> PopRecord:
        term = self.profile.terminal
        return PopRecord(
            record_id=uuid.uuid4(), payment_id=sale.payment_id, kind="sale",
            terminal_id=term.terminal_id, merchant_id=term.merchant_id,
            amount_minor=sale.request.amount.minor,
            currency=sale.request.amount.currency.code, card_token=card.token,
            created_at=self.clock().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            sequence=ledger.next_pop_sequence(conn),
        )

    def _exposure(self, sale: _Sale) -> ledger.OfflineExposure:
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

    def _offline_allowed(self, amount: Amount,
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

    # --- finalisation ------------------------------------------------------------------

    async def _finalise(self, sale: _Sale, legs: DualLegs,
                        result: TransactionResult) -> PaymentOutcome:
        card_approved = result.decision in _APPROVED_DECISIONS
        if not legs.called:
            return await self._finalise_without_host(sale, result, card_approved)
        fin, pop = legs.financial, legs.pop_leg
        prepared = sale.prepared
        if prepared is not None and not prepared.go:
            return self._close(sale, result, "financial_declined",
                               prepared.reason or _reason(result, "declined"))
        if fin.status == "approved" and card_approved:
            return await self._approved(sale, result, fin, pop, offline=False)
        if fin.status == "approved":
            return await self._reverse_after_card_decline(sale, result, legs)
        if fin.status == "declined":
            return await self._declined(sale, result, legs,
                                        _psp_reason(fin.response) or _reason(result, "declined"))
        if fin.status == "unreachable":
            if card_approved:
                return await self._approved(sale, result, fin, pop, offline=True)
            why = sale.offline_refusal or _reason(result, "declined offline by the card")
            return await self._declined(sale, result, legs,
                                        f"host unreachable; {why}")
        # timeout, unknown or reversed outcome: coordinated cancel (fallback 3)
        return await self._cancel(sale, result, legs)

    async def _finalise_without_host(self, sale: _Sale, result: TransactionResult,
                                     card_approved: bool) -> PaymentOutcome:
        """The card decided at GENERATE AC 1 (TC or AAC): no host was asked."""
        pan, expiry = pan_from_card(result.emv_data), expiry_from_card(result.emv_data)
        if pan is not None and expiry is not None:
            aid = bytes.fromhex(result.aid) if result.aid else b""
            try:
                network = network_for_aid(self.profile, aid)
            except EmvError:
                network = result.network or ""
            candidates = self._candidates(pan, aid, network, sale.request.amount)
            await self._prepare(sale, pan, expiry, network, candidates, submit_pop=False)
        if not card_approved:
            return self._close(sale, result, "financial_declined",
                               _reason(result, "declined by the card"))
        ok, why = self._offline_allowed(sale.request.amount, self._exposure(sale))
        if not ok or sale.card is None:
            return self._close(sale, result, "financial_declined",
                               why or "the card gave no PAN to record the sale")
        if sale.fraud is not None and sale.fraud.decision == "decline":
            return self._close(sale, result, "financial_declined",
                               f"declined by the fraud rules (score {sale.fraud.score:.2f})")
        with self.store.transaction() as conn:
            sale.pop_record = self._pop_record(conn, sale, sale.card)
            record_change(conn, StateChange(
                "pop_transaction", str(sale.pop_record.record_id), "pending",
                fields={"payment_id": str(sale.payment_id),
                        "sequence": sale.pop_record.sequence}))
        # The card approved offline: the PoP leg still runs now (under the deadline); the
        # financial leg becomes an advice in the outbox.
        deadline = asyncio.get_running_loop().time() + self.deadline_s
        pop = await submit_pop(self.pop, sale.pop_record, deadline)
        fin = FinancialLeg(status="unreachable", candidates=self._route_of(sale))
        return await self._approved(sale, result, fin, pop, offline=True)

    def _candidates(self, pan: str, aid: bytes, network: str, amount: Amount) -> list[str]:
        key = RoutingKey(network=network, currency=amount.currency.code,
                         amount_minor=amount.minor, aid=aid.hex().upper(), bin=pan[:8])
        try:
            return self.router.candidates(key)
        except NoRouteError:
            return []

    def _route_of(self, sale: _Sale) -> list[str]:
        row = ledger.payment_row(self.store, str(sale.payment_id)) or {}
        route = row.get("route_connectors")
        return list(route) if isinstance(route, list) else []

    async def _approved(self, sale: _Sale, result: TransactionResult, fin: FinancialLeg,
                        pop: PopLeg, *, offline: bool) -> PaymentOutcome:
        outbox: list[OutboxMessage] = []
        pid = str(sale.payment_id)
        if pop.status == "confirmed":
            state = "completed"
        elif pop.status == "rejected":
            state = "needs_reconciliation"
        else:
            state = "pop_deferred"
        if offline:
            connector = (fin.candidates or self._route_of(sale) or ["-"])[0]
            outbox.append(OutboxMessage(
                f"psp:{connector}", "advice",
                {"payment_id": pid, "advice_id": str(advice_id(pid)),
                 "connector": connector, "network": sale.network,
                 "amount": amount_payload(sale.request.amount),
                 "entry_mode": "contactless" if sale.request.contactless else "chip"},
                f"advice:{pid}", ref_id=pid, ttl_s=SETTLE_TTL_S))
        pop_fields, pop_state = self._pop_after(pop, approved=True)
        if pop.status == "unavailable" and sale.pop_record is not None:
            outbox.append(OutboxMessage("pop", "pop_record", sale.pop_record.as_payload(),
                                        f"pop:{sale.pop_record.record_id}", ref_id=pid,
                                        priority=POP_PRIORITY))
        if state == "completed":
            reference = pop.receipt.pop_reference if pop.receipt is not None else None
            outbox.append(self._token_activation(sale, reference))
        if state == "needs_reconciliation":
            outbox.append(alert_message(pid, "pop_rejected_for_approved_sale",
                                 pop.reason or "the PoP back end refused the record"))
        if not offline:
            reason = "approved by the issuer"
        elif fin.attempts:
            reason = "approved offline: the host could not be reached"
        else:
            reason = "approved offline by the card (within its and the terminal's limits)"
        if state == "pop_deferred":
            reason += "; PoP pending"
        elif state == "needs_reconciliation":
            reason += "; PoP refused the record: needs reconciliation"
        captured = sale.request.amount.minor
        return self._close(sale, result, state, reason, outbox=outbox, offline=offline,
                           attempts=fin.attempts, pop_state=pop_state, pop_fields=pop_fields,
                           captured=captured, psp_response=fin.response)

    async def _reverse_after_card_decline(self, sale: _Sale, result: TransactionResult,
                                          legs: DualLegs) -> PaymentOutcome:
        """The issuer approved but the card declined at GENERATE AC 2: undo the charge."""
        fin = legs.financial
        assert fin.response is not None
        reference = fin.response.reference
        reversed_now = False
        try:
            async with asyncio.timeout(self.deadline_s):
                answer = await self.router.reverse(reference, psp_amount(sale.request.amount))
            reversed_now = answer.outcome is Outcome.APPROVE
        except (PspError, TimeoutError):
            reversed_now = False
        pid = str(sale.payment_id)
        outbox = [] if reversed_now else [self._reversal_message(sale, reference)]
        outbox += self._pop_cancel(legs, "the card declined after the issuer approved")
        pop_fields, pop_state = self._pop_after(legs.pop_leg, approved=False)
        state = "reversed" if reversed_now else "reversal_pending"
        reason = ("declined by the card after the issuer approved (AAC at GENERATE AC 2); "
                  + ("the authorisation was reversed" if reversed_now
                     else "the reversal is queued"))
        if reversed_now:
            # reversal_pending → reversed: two journal entries, one for each step.
            self._close(sale, result, "reversal_pending", reason, outbox=outbox,
                        attempts=fin.attempts, pop_state=pop_state, pop_fields=pop_fields,
                        psp_response=fin.response)
            self.store.record(StateChange("payment", pid, "reversed",
                                          reason="reversal acknowledged by the PSP"))
            return self._outcome(pid)
        return self._close(sale, result, state, reason, outbox=outbox, attempts=fin.attempts,
                           pop_state=pop_state, pop_fields=pop_fields,
                           psp_response=fin.response)

    async def _declined(self, sale: _Sale, result: TransactionResult, legs: DualLegs,
                        reason: str) -> PaymentOutcome:
        outbox = self._pop_cancel(legs, "the payment was declined")
        pop_fields, pop_state = self._pop_after(legs.pop_leg, approved=False)
        return self._close(sale, result, "financial_declined", reason, outbox=outbox,
                           attempts=legs.financial.attempts, pop_state=pop_state,
                           pop_fields=pop_fields, psp_response=legs.financial.response)

    async def _cancel(self, sale: _Sale, result: TransactionResult | None,
                      legs: DualLegs) -> PaymentOutcome:
        """Fallback 3: the financial leg's fate is unknown at the deadline: reverse it
        wherever it may have gone, and cancel the PoP record."""
        fin = legs.financial
        pid = str(sale.payment_id)
        outbox: list[OutboxMessage] = []
        if fin.status == "reversed":
            pass  # the PSP confirmed the reversal itself: nothing left to undo
        elif fin.reversal is not None:
            outbox.append(OutboxMessage(
                f"psp:{fin.reversal.get('connector')}", "reversal", fin.reversal,
                f"reversal:{pid}", ref_id=pid, priority=REVERSAL_PRIORITY,
                ttl_s=SETTLE_TTL_S))
        else:
            for connector in fin.candidates:
                reference = PspReference(connector=connector, transaction_id=pid)
                outbox.append(self._reversal_message(sale, reference,
                                                     key=f"reversal:{pid}:{connector}"))
        outbox += self._pop_cancel(legs, "the payment timed out and was cancelled")
        pop_fields, pop_state = self._pop_after(legs.pop_leg, approved=False)
        if fin.status == "timeout":
            why = (f"no answer from the acquirer within the {self.deadline_s:g} s deadline; "
                   "a reversal is queued")
        elif fin.status == "reversed":
            why = "the acquirer did not answer in time and confirmed the reversal"
        else:
            why = "the acquirer's answer was lost; a reversal is queued"
        return self._close(sale, result, "cancelled", f"cancelled: {why}", outbox=outbox,
                           attempts=fin.attempts, pop_state=pop_state, pop_fields=pop_fields)

    async def _abandon(self, sale: _Sale, legs: DualLegs, exc: BaseException,
                       emit: EventSink) -> PaymentOutcome:
        """The card session ended early (card removed, no card, card error)."""
        fin = legs.financial
        pid = str(sale.payment_id)
        reason = _mask(str(exc)) or type(exc).__name__
        if fin.status == "approved" and fin.response is not None:
            # The issuer approved but the card never finished: no TC, so undo the charge.
            reference = fin.response.reference
            outbox = [self._reversal_message(sale, reference)]
            outbox += self._pop_cancel(legs, "the card session ended before completion")
            pop_fields, pop_state = self._pop_after(legs.pop_leg, approved=False)
            outcome = self._close(sale, None, "reversal_pending",
                                  f"the card session ended after approval ({reason}); "
                                  "the reversal is queued", outbox=outbox,
                                  attempts=fin.attempts, pop_state=pop_state,
                                  pop_fields=pop_fields, psp_response=fin.response)
        elif fin.status in ("timeout", "unknown", "reversed"):
            outcome = await self._cancel(sale, None, legs)
        else:
            outbox = self._pop_cancel(legs, "the card session ended early")
            pop_fields, pop_state = self._pop_after(legs.pop_leg, approved=False)
            current = (ledger.payment_row(self.store, pid) or {}).get("status")
            state = "cancelled"
            if current == "created" and not outbox:
                outcome = self._close(sale, None, state, f"cancelled: {reason}")
            else:
                outcome = self._close(sale, None, state, f"cancelled: {reason}", outbox=outbox,
                                      attempts=fin.attempts, pop_state=pop_state,
                                      pop_fields=pop_fields)
        emit(PaymentEvent("done", outcome.state, sale.payment_id))
        return outcome

    # --- pieces of the finalisation ----------------------------------------------------

    def _reversal_message(self, sale: _Sale, reference: PspReference, *,
                          key: str | None = None) -> OutboxMessage:
        pid = str(sale.payment_id)
        payload = reversal_payload(reference, sale.request.amount)
        return OutboxMessage(f"psp:{reference.connector}", "reversal", payload,
                             key or f"reversal:{pid}", ref_id=pid,
                             priority=REVERSAL_PRIORITY, ttl_s=SETTLE_TTL_S)

    def _pop_cancel(self, legs: DualLegs, why: str) -> list[OutboxMessage]:
        """A PoP record that may have reached the back end is withdrawn, via the outbox."""
        record = legs.pop_leg.record
        if record is None or legs.pop_leg.status == "not_sent":
            return []
        if legs.pop_leg.status == "rejected":
            return []
        return [OutboxMessage("pop", "pop_cancel",
                              {"record_id": str(record.record_id), "reason": why},
                              f"pop-cancel:{record.record_id}", ref_id=str(record.payment_id),
                              priority=POP_PRIORITY)]

    @staticmethod
    def _pop_after(pop: Any, *, approved: bool) -> tuple[dict[str, Any], str | None]:
        """The PoP record's next state and fields, from what its leg did."""
        if pop.record is None:
            return {}, None
        reference = pop.receipt.pop_reference if pop.receipt is not None else None
        fields = {"pop_reference": reference, "reason": pop.reason}
        if not approved:
            return fields, "cancelled"
        return fields, {"confirmed": "confirmed", "pending": "submitted",
                        "rejected": "rejected", "unavailable": "deferred"}.get(pop.status)

    def _token_activation(self, sale: _Sale, pop_reference: str | None) -> OutboxMessage:
        return token_activation(
            payment_id=str(sale.payment_id), terminal_id=self.profile.terminal.terminal_id,
            card_token=sale.card.token if sale.card else "", amount=sale.request.amount,
            network=sale.network, pop_reference=pop_reference,
            pop_record_id=str(sale.pop_record.record_id) if sale.pop_record else None)

    def _close(self, sale: _Sale, result: TransactionResult | None, state: str, reason: str,
               *, outbox: list[OutboxMessage] | None = None, offline: bool = False,
               attempts: list[ledger.Attempt] | None = None, pop_state: str | None = None,
               pop_fields: Mapping[str, Any] | None = None, captured: int | None = None,
               psp_response: Any = None) -> PaymentOutcome:
        """The final transition: payment state, attempts, PoP record, receipts, the
        platform's copy and the outbox rows, in one transaction."""
        pid = str(sale.payment_id)
        emv = _emv_summary(result) if result is not None else {}
        fields: dict[str, Any] = {"reason": reason[:500], "emv": json_text(emv),
                                  "offline": int(offline)}
        if captured is not None:
            fields["captured_minor"] = captured
        if psp_response is not None:
            reference = psp_response.reference
            fields["psp_reference"] = json_text(reference.as_dict())
            fields["gateway_provider"] = reference.connector
            fields["gateway_transaction_id"] = reference.rrn or reference.transaction_id
            fields["auth_code"] = reference.approval_code
        receipt = self._receipt_data(sale, result, state, fields.get("auth_code"), pop_fields)
        if receipt is not None:
            fields["receipt"] = json_text(receipt)
        messages = list(outbox or [])
        messages.append(transaction_uplink(self._uplink(sale, state, offline, attempts or []),
                                           ref_id=pid))
        with self.store.transaction() as conn:
            current = conn.execute("SELECT status FROM payments WHERE id = ?",
                                   (pid,)).fetchone()[0]
            if current == "created" and state in ("completed", "pop_deferred",
                                                  "reversal_pending", "needs_reconciliation"):
                record_change(conn, StateChange("payment", pid, "authorising",
                                                action="authorise"))
            if attempts:
                ledger.insert_attempts(conn, sale.payment_id, attempts)
            if pop_state is not None and sale.pop_record is not None:
                self._move_pop(conn, str(sale.pop_record.record_id), pop_state,
                               dict(pop_fields or {}))
            record_change(conn, StateChange("payment", pid, state, fields=fields,
                                            outbox=messages, reason=reason[:200]))
        return self._outcome(pid)

    @staticmethod
    def _move_pop(conn: Any, record_id: str, target: str, fields: dict[str, Any]) -> None:
        row = conn.execute("SELECT status FROM pop_transactions WHERE id = ?",
                           (record_id,)).fetchone()
        if row is None or row[0] == target:
            return
        path = {("pending", "cancelled"): ["cancelled"],
                ("pending", "submitted"): ["submitted"],
                ("pending", "confirmed"): ["confirmed"],
                ("pending", "rejected"): ["rejected"],
                ("pending", "deferred"): ["deferred"]}.get((row[0], target), [target])
        for step in path:
            record_change(conn, StateChange("pop_transaction", record_id, step,
                                            fields={k: v for k, v in fields.items()
                                                    if v is not None}))

    def _uplink(self, sale: _Sale, state: str, offline: bool,
                attempts: list[ledger.Attempt]) -> dict[str, Any]:
        """The platform's copy of the payment: its state, fraud check and PSP attempts (no
        card data: the masked PAN only)."""
        amount = sale.request.amount
        return {"payment_id": str(sale.payment_id), "type": "sale", "state": state,
                "amount_minor": amount.minor, "currency": amount.currency.code,
                "business_date": self.clock().date().isoformat(), "offline": offline,
                "network": sale.network,
                "pan_masked": sale.card.masked_pan if sale.card else None,
                "fraud": sale.fraud.as_row() if sale.fraud else None,
                "attempts": [{"connector": a.connector, "status": a.status,
                              "code": a.error_code} for a in attempts],
                "pop_record_id": str(sale.pop_record.record_id) if sale.pop_record else None}

    def _receipt_data(self, sale: _Sale, result: TransactionResult | None, state: str,
                      auth_code: Any, pop_fields: Mapping[str, Any] | None
                      ) -> dict[str, Any] | None:
        if result is None or sale.card is None:
            return None
        cryptogram = result.application_cryptogram or ""
        if len(cryptogram) != 16 or result.cryptogram not in ("TC", "ARQC", "AAC"):
            return None
        term = self.profile.terminal
        try:
            receipt = Receipt(
                merchant_name=term.merchant_name, merchant_id=term.merchant_id,
                terminal_id=term.terminal_id, timestamp=self.clock(),
                amount=sale.request.amount, masked_pan=sale.card.masked_pan,
                aid=result.aid, app_label=result.label or result.aid,
                entry_mode="contactless" if sale.request.contactless else "contact",
                cvm=_KERNEL_CVMS.get(result.cvm, "no_cvm"),  # type: ignore[arg-type]
                tvr=result.tvr, tsi=result.tsi, cryptogram=cryptogram,
                cryptogram_type=result.cryptogram,  # type: ignore[arg-type]
                auth_code=auth_code if isinstance(auth_code, str) else None,
                pop_reference=(pop_fields or {}).get("pop_reference"),
                copy="merchant", payment_id=str(sale.payment_id),
                approved=state in APPROVED_STATES or state == "needs_reconciliation",
            )
        except ValueError:
            return None
        return receipt.as_dict()

    # --- reading back ------------------------------------------------------------------

    def _outcome(self, payment_id: str) -> PaymentOutcome:
        row = ledger.payment_row(self.store, payment_id)
        assert row is not None
        return outcome_from_row(self.store, row, self.locale)


def outcome_from_row(store: Store, row: Mapping[str, Any], locale: str = "fr"
                     ) -> PaymentOutcome:
    """A payment's outcome as the CLI and the UI show it, from its stored row."""
    pid = str(row["id"])
    pop = store.connection.execute(
        "SELECT status, pop_reference FROM pop_transactions WHERE payment_id = ?",
        (pid,)).fetchone()
    fraud = store.connection.execute(
        "SELECT risk_score, risk_level, decision FROM fraud_checks WHERE payment_id = ? "
        "ORDER BY created_at DESC LIMIT 1", (pid,)).fetchone()
    attempts = store.connection.execute(
        "SELECT count(*) FROM payment_attempts WHERE payment_id = ?", (pid,)).fetchone()[0]
    receipts: dict[str, str] = {}
    data = row.get("receipt")
    if isinstance(data, dict):
        with contextlib.suppress(Exception):
            merchant = Receipt.from_dict(data)
            if pop is not None and pop[1] and not merchant.pop_reference:
                merchant = Receipt.from_dict({**data, "pop_reference": pop[1]})
            receipts["merchant"] = render_text(merchant, locale=locale)
            receipts["customer"] = render_text(
                Receipt.from_dict({**merchant.as_dict(), "copy": "customer"}), locale=locale)
    state = str(row["status"])
    return PaymentOutcome(
        payment_id=uuid.UUID(pid), state=state,
        approved=state in APPROVED_STATES, reason=str(row.get("reason") or ""),
        amount=Amount(int(row["amount_minor"]), currency_of(str(row["currency"]))),
        offline=bool(row.get("offline")), masked_pan=str(row.get("pan_masked") or ""),
        network=str(row.get("network") or ""), auth_code=row.get("auth_code"),
        pop_status=pop[0] if pop else None, pop_reference=pop[1] if pop else None,
        emv=emv if isinstance(emv := row.get("emv"), dict) else {},
        fraud=({"score": fraud[0], "level": fraud[1], "decision": fraud[2]}
               if fraud else None),
        attempts=int(attempts), receipts=receipts,
    )


def token_activation(*, payment_id: str, terminal_id: str, card_token: str, amount: Amount,
                     network: str, pop_reference: str | None,
                     pop_record_id: str | None) -> OutboxMessage:
    """Seed 001 §3.3: a confirmed dual transaction activates the card's token. The event
    goes to the platform, which forwards it to the token system; ``event_id`` is derived
    from the payment, so a resent event is the same event."""
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"etika:activation:{payment_id}"))
    payload: dict[str, JsonValue] = {
        "event_id": event_id, "terminal_id": terminal_id, "payment_id": payment_id,
        "card_token": card_token, "amount_minor": amount.minor, "currency": amount.currency.code,
        "network": network, "pop_reference": pop_reference, "pop_record_id": pop_record_id}
    return OutboxMessage("platform", "token_activation", payload, f"activation:{payment_id}",
                         ref_id=payment_id)


def _reason(result: TransactionResult | None, fallback: str) -> str:
    text = getattr(result, "reason", "") if result is not None else ""
    return str(text) if text else fallback


def _psp_reason(response: Any) -> str:
    if response is None:
        return ""
    message = f": {response.message}" if response.message else ""
    return f"declined by the issuer (code {response.code}{message})"


def _emv_summary(result: TransactionResult) -> dict[str, Any]:
    data = result.as_json()
    data.pop("expiry", None)  # the expiry is card data: never stored in clear
    return data


def _mask(text: str) -> str:
    return mask_pan_text(text)
