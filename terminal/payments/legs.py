"""The two legs of a dual transaction, run together under one deadline (seed 001 §2.3).

:class:`DualLegs` is the EMV kernel's online authoriser for one payment. When the card asks
to go online (ARQC) it tokenises the card, scores fraud, records the payment as
``authorising`` (UUID written before anything is sent), then runs the financial
authorisation and the PoP submission in one :class:`asyncio.TaskGroup` under one absolute
deadline, and answers the kernel with what GENERATE AC 2 should ask for. What each leg did is
kept for the manager's finalisation (:mod:`terminal.payments.manager`).

Leg outcomes, financial: ``approved``, ``declined``, ``unreachable`` (every connector down or
its breaker open: the offline decision applies), ``timeout`` (the deadline passed with the
request out: coordinated cancel), ``unknown`` (the PSP left a reversal pending),
``reversed`` (no answer in time, and the PSP confirmed the reversal: cancelled). PoP:
``confirmed``, ``pending`` (the back end holds it), ``rejected``, ``unavailable``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_sync.connectors import Router, RoutingKey
from edge_sync.connectors.base import EntryMode, PspResponse
from edge_sync.connectors.errors import (
    AuthorisationReversedError,
    NoRouteError,
    PspError,
    ReversalPendingError,
)
from edge_sync.errors import PopError, PopRejectedError, PopUnavailableError
from edge_sync.pop import PopClient, PopReceipt, PopRecord
from etika_errors import EtikaError
from terminal.emv.kernel import OnlineRequest, OnlineResponse
from terminal.emv.pan import expiry_from_card, pan_from_card
from terminal.money import Amount
from terminal.payments.ledger import Attempt
from terminal.psp_routing import KernelAuthoriser
from terminal.services.psp import psp_amount

__all__ = ["ARC_DECLINE", "DualLegs", "FinancialLeg", "PopLeg", "Prepared", "submit_pop"]

#: What the terminal answers the card when it declines itself (no host decision to relay):
#: ``Z3`` is "unable to go online, declined" (Book 4 Annex A6).
ARC_DECLINE = b"Z3"


@dataclass
class FinancialLeg:
    status: str = "not_sent"  # approved | declined | unreachable | timeout | unknown | not_sent
    response: PspResponse | None = None
    error: PspError | None = None
    reversal: dict[str, Any] | None = None
    attempts: list[Attempt] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


@dataclass
class PopLeg:
    status: str = "not_sent"  # confirmed | pending | rejected | unavailable | not_sent
    receipt: PopReceipt | None = None
    reason: str | None = None
    record: PopRecord | None = None


@dataclass(frozen=True)
class Prepared:
    """What the manager decided before anything is sent (see :meth:`DualLegs.authorise`)."""

    go: bool  # False: decline without asking anyone (fraud rules, no route, offline limits)
    reason: str = ""
    record: PopRecord | None = None
    offline_allowed: bool = False


class DualLegs:
    """The kernel's :class:`~terminal.emv.kernel.OnlineAuthoriser` for one payment.

    ``prepare(pan, expiry, network, candidates)`` is the manager's step before sending:
    tokenise, fraud, the ``authorising`` transition and the PoP record; it runs in the
    caller's thread boundary and returns :class:`Prepared`.
    """

    def __init__(self, *, payment_id: uuid.UUID, amount: Amount, router: Router,
                 pop: PopClient, network_of: Callable[[bytes], str],
                 prepare: Callable[[str, str, str, list[str]], Any],
                 deadline_s: float, contactless: bool,
                 on_event: Callable[[str, str], None],
                 on_step: Callable[[str], None] = lambda _step: None) -> None:
        self.payment_id = payment_id
        self.amount = amount
        self.router = router
        self.pop = pop
        self._network_of = network_of
        self._prepare = prepare
        self.deadline_s = deadline_s
        self.contactless = contactless
        self._on_event = on_event
        self._on_step = on_step
        self.financial = FinancialLeg()
        self.pop_leg = PopLeg()
        self.prepared: Prepared | None = None
        self.called = False
        self.network = ""

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        self.called = True
        icc = dict(request.icc_data)
        pan, expiry = pan_from_card(icc), expiry_from_card(icc)
        if pan is None or expiry is None:
            self.prepared = Prepared(False, "the card gave no PAN or expiry to authorise")
            return OnlineResponse(arc=ARC_DECLINE)
        self.network = self._network_of(request.aid)
        key = RoutingKey(network=self.network, currency=self.amount.currency.code,
                         amount_minor=self.amount.minor, aid=request.aid.hex().upper(),
                         bin=pan[:8])
        try:
            self.financial.candidates = self.router.candidates(key)
        except NoRouteError as exc:
            self.financial.candidates = []
            no_route = f"no acquirer takes this card: {exc}"
            self.prepared = await self._prepare(pan, expiry, self.network, [])
            self.prepared = Prepared(False, no_route, self.prepared.record)
            return OnlineResponse(arc=ARC_DECLINE)
        self.prepared = await self._prepare(pan, expiry, self.network,
                                            self.financial.candidates)
        if not self.prepared.go:
            return OnlineResponse(arc=ARC_DECLINE)
        self._on_event("online", "authorising with the acquirer and the PoP back end")
        deadline = asyncio.get_running_loop().time() + self.deadline_s
        bridge = KernelAuthoriser(
            self.router, self.payment_id, psp_amount(self.amount), network=self.network,
            entry_mode=EntryMode.CONTACTLESS if self.contactless else EntryMode.CHIP,
        )
        answer: list[OnlineResponse | None] = [None]
        refused: list[EtikaError] = []
        async with asyncio.TaskGroup() as group:
            group.create_task(self._financial(bridge, request, deadline, answer, refused),
                              name=f"financial-{self.payment_id}")
            if self.prepared.record is not None:
                group.create_task(self._pop(self.prepared.record, deadline),
                                  name=f"pop-{self.payment_id}")
        if refused:
            # Nothing was sent for the card's data (the bridge refuses it before routing):
            # the kernel ends with the card's own error, and the manager cancels the sale
            # and withdraws the PoP record — not an ExceptionGroup out of the TaskGroup.
            raise refused[0]
        self._on_step("legs_answered")  # both legs back; GENERATE AC 2 comes next
        return self._kernel_answer(answer[0])

    async def _financial(self, bridge: KernelAuthoriser, request: OnlineRequest,
                         deadline: float, answer: list[OnlineResponse | None],
                         refused: list[EtikaError]) -> None:
        started = time.monotonic()
        leg = self.financial
        try:
            async with asyncio.timeout_at(deadline):
                answer[0] = await bridge.authorise(request)
        except EtikaError as exc:
            if bridge.response is None and bridge.error is None:
                refused.append(exc)  # refused before anything was sent
                return
            raise  # the bridge never raises after an answer: a bug, not swallowed
        except TimeoutError:
            leg.status = "timeout"
            leg.attempts.append(Attempt(leg.candidates[0] if leg.candidates else "-",
                                        "timeout", error_message="no answer within the "
                                        f"{self.deadline_s:g} s deadline"))
            return
        finally:
            leg.elapsed_s = time.monotonic() - started
        leg.response, leg.error = bridge.response, bridge.error
        if bridge.response is not None:
            response = bridge.response
            leg.status = "approved" if response.approved else "declined"
            leg.attempts.append(Attempt(response.reference.connector, leg.status,
                                        error_code=response.code,
                                        error_message=response.message or None,
                                        summary=_summary(response)))
            return
        error = bridge.error
        tried = error.fields.get("attempts", []) if error is not None else []
        for entry in tried if isinstance(tried, list) else []:
            if isinstance(entry, dict):
                status = ("reversed" if entry.get("reason") == AuthorisationReversedError.__name__
                          else "unreachable")
                leg.attempts.append(Attempt(str(entry.get("connector", "-")), status,
                                            error_code=str(entry.get("reason", ""))[:40],
                                            error_message=str(entry.get("detail", "")) or None))
        reversed_by_psp = isinstance(error, AuthorisationReversedError) or any(
            isinstance(entry, dict) and entry.get("reason") == AuthorisationReversedError.__name__
            for entry in (tried if isinstance(tried, list) else []))
        if reversed_by_psp:
            # The acquirer did not answer in time and then confirmed the reversal: it was
            # reachable, so this is no "unable to go online" (an offline approval would
            # send an advice under the reversed transaction's own id, which books nothing).
            leg.status = "reversed"
        elif isinstance(error, ReversalPendingError):
            leg.status = "unknown"
            leg.reversal = dict(error.reversal)
            leg.attempts.append(Attempt(str(error.reversal.get("connector", "-")), "unknown",
                                        error_message=str(error)))
        else:
            leg.status = "unreachable"
            if not leg.attempts:
                leg.attempts.append(Attempt(leg.candidates[0] if leg.candidates else "-",
                                            "unreachable", error_message=str(error)))

    async def _pop(self, record: PopRecord, deadline: float) -> None:
        self.pop_leg = await submit_pop(self.pop, record, deadline)

    def _kernel_answer(self, answer: OnlineResponse | None) -> OnlineResponse | None:
        status = self.financial.status
        if status in ("approved", "declined"):
            return answer if answer is not None else OnlineResponse(arc=ARC_DECLINE)
        if status == "unreachable" and self.prepared is not None and \
                self.prepared.offline_allowed:
            return None  # unable to go online: the card's and the terminal's rules decide
        return OnlineResponse(arc=ARC_DECLINE)


async def submit_pop(client: PopClient, record: PopRecord, deadline: float) -> PopLeg:
    """Submit ``record`` until ``deadline`` (loop time); what happened, never an exception
    for a back end that refuses, fails or is slow."""
    leg = PopLeg(record=record)
    try:
        async with asyncio.timeout_at(deadline):
            leg.receipt = await client.submit(record)
    except TimeoutError:
        leg.status, leg.reason = "unavailable", "no answer within the deadline"
        return leg
    except PopRejectedError as exc:
        leg.status, leg.reason = "rejected", str(exc)
        return leg
    except (PopUnavailableError, PopError) as exc:
        # Any other PoP failure leaves the record's fate unknown: it goes to the outbox and
        # is sent again under the same record id (the back end dedups).
        leg.status, leg.reason = "unavailable", str(exc)
        return leg
    leg.status = {"confirmed": "confirmed", "pending": "pending"}.get(leg.receipt.status,
                                                                      "rejected")
    leg.reason = leg.receipt.reason
    return leg


def _summary(response: PspResponse) -> dict[str, Any]:
    reference = response.reference
    return {"connector": reference.connector, "outcome": str(response.outcome),
            "code": response.code, "rrn": reference.rrn, "stan": reference.stan,
            "approval_code": reference.approval_code, "replayed": response.replayed}
