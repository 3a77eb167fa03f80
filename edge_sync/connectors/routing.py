"""Routing: which connectors may take a payment, in which order, and how failures fall through.

Routes come from the profile as values (:class:`RouteRule`, :class:`ConnectorScope`); the
first rule whose every condition matches gives the ordered connectors to try. For each
connector, in order:

1. its :class:`~edge_sync.connectors.breaker.CircuitBreaker` may refuse at once (open);
2. an operation is retried with exponential backoff and jitter (``RetryPolicy``, the outbox
   worker's) only when the connector says it is safe to send again
   (:meth:`Connector.retry_safe`: idempotency key honoured, or an ISO repeat message);
3. an authorisation whose outcome stays unknown (timeout, dropped link, unreadable answer)
   is **reversed** at once; a confirmed reversal lets routing go on to the next connector
   (:class:`AuthorisationReversedError` is recorded), an unconfirmed one stops everything with
   :class:`ReversalPendingError`, whose ``reversal`` the terminal queues in the outbox — trying
   another PSP then could charge the card twice. A REST PSP's "no such payment", read from
   its lagging search (:attr:`PspResponse.not_found_by_search`), is not a confirmation;
4. a connector that cannot be reached, rejects the request, answers "retry", or was
   reversed counts as a breaker failure and the next connector is tried; a decline or a
   referral is final.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from edge_sync.connectors.base import (
    Amount,
    AuthorisationRequest,
    Connector,
    Operation,
    Outcome,
    PspReference,
    PspResponse,
    RefundRequest,
)
from edge_sync.connectors.breaker import BreakerSettings, CircuitBreaker
from edge_sync.connectors.errors import (
    AuthorisationReversedError,
    CircuitOpenError,
    ConnectorsExhaustedError,
    NoRouteError,
    OutcomeUnknownError,
    PspError,
    PspRejectedError,
    PspUnreachableError,
    ReversalPendingError,
)
from edge_sync.json_types import JsonObject, JsonValue
from edge_sync.outbox import RetryPolicy

__all__ = ["ConnectorScope", "RouteRule", "Router", "RoutingKey"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoutingKey:
    """What routing may look at: no clear card data (the BIN is public, PCI DSS 3.4)."""

    network: str
    currency: str
    amount_minor: int
    aid: str = ""
    bin: str = ""


@dataclass(frozen=True)
class RouteRule:
    """One ``[[route]]``: empty conditions match everything."""

    name: str
    connectors: tuple[str, ...]
    networks: frozenset[str] = frozenset()
    aid_prefixes: tuple[str, ...] = ()
    bin_ranges: tuple[tuple[str, str], ...] = ()
    currencies: frozenset[str] = frozenset()
    min_amount: int | None = None
    max_amount: int | None = None

    def matches(self, key: RoutingKey) -> bool:
        if self.networks and key.network not in self.networks:
            return False
        if self.currencies and key.currency not in self.currencies:
            return False
        if self.aid_prefixes and not any(key.aid.upper().startswith(p.upper())
                                         for p in self.aid_prefixes):
            return False
        if self.bin_ranges and not any(_in_bin_range(key.bin, low, high)
                                       for low, high in self.bin_ranges):
            return False
        if self.min_amount is not None and key.amount_minor < self.min_amount:
            return False
        return self.max_amount is None or key.amount_minor <= self.max_amount


def _in_bin_range(bin_: str, low: str, high: str) -> bool:
    # Compare on the range's own width so that a 6-digit range covers 8-digit BINs.
    width = max(len(low), len(high))
    if len(bin_) < width:
        return False
    return low.ljust(width, "0") <= bin_[:width] <= high.ljust(width, "9")


@dataclass(frozen=True)
class ConnectorScope:
    """What a connector accepts (``[[psp]]`` networks and currencies)."""

    networks: frozenset[str]
    currencies: frozenset[str]

    def accepts(self, key: RoutingKey) -> bool:
        return key.network in self.networks and key.currency in self.currencies


@dataclass
class _Attempts:
    tried: list[dict[str, Any]] = field(default_factory=list)

    def add(self, connector: str, reason: str, **extra: Any) -> None:
        self.tried.append({"connector": connector, "reason": reason, **extra})


class Router:
    def __init__(
        self,
        routes: Sequence[RouteRule],
        connectors: Mapping[str, Connector],
        scopes: Mapping[str, ConnectorScope],
        *,
        breakers: Mapping[str, BreakerSettings] | None = None,
        retry: RetryPolicy | None = None,
        max_attempts: int = 3,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        unknown = sorted({c for r in routes for c in r.connectors} - set(connectors))
        if unknown:
            raise ValueError(f"routes name connectors that were not given: {unknown}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.routes = list(routes)
        self.connectors = dict(connectors)
        self.scopes = dict(scopes)
        self.breakers = {
            name: CircuitBreaker(name, (breakers or {}).get(name)) for name in connectors
        }
        self.retry = retry or RetryPolicy(base_s=0.05, cap_s=1.0)
        self.max_attempts = max_attempts
        self._sleep = sleep

    # --- choosing ----------------------------------------------------------------------

    def route_for(self, key: RoutingKey) -> RouteRule:
        for rule in self.routes:
            if rule.matches(key):
                return rule
        raise NoRouteError(
            f"no route accepts a {key.network or 'unknown-network'} card paying "
            f"{key.amount_minor} {key.currency}; add a [[route]] or decline",
            network=key.network, currency=key.currency, amount_minor=key.amount_minor,
        )

    def candidates(self, key: RoutingKey) -> list[str]:
        """The route's connectors that accept this network and currency, in order."""
        rule = self.route_for(key)
        names = [n for n in rule.connectors
                 if n not in self.scopes or self.scopes[n].accepts(key)]
        if not names:
            raise NoRouteError(
                f"route {rule.name!r} matches but none of its connectors accepts "
                f"{key.network} in {key.currency}", route=rule.name,
            )
        return names

    # --- authorisation -----------------------------------------------------------------

    async def authorise(self, request: AuthorisationRequest, key: RoutingKey) -> PspResponse:
        """Authorise through the first connector that gives a definite answer."""
        attempts = _Attempts()
        for name in self.candidates(key):
            connector, breaker = self.connectors[name], self.breakers[name]
            try:
                breaker.before_call()
            except CircuitOpenError as exc:
                attempts.add(name, "circuit_open", detail=str(exc))
                continue
            try:
                response = await self._authorise_one(connector, request)
            except (PspUnreachableError, AuthorisationReversedError, PspRejectedError) as exc:
                # A rejection is our request or credentials being wrong for this PSP: it
                # did nothing, another PSP may take the payment, the breaker counts it.
                breaker.record_failure()
                attempts.add(name, type(exc).__name__, detail=str(exc))
                continue
            except ReversalPendingError:
                breaker.record_failure()
                raise
            if response.outcome is Outcome.RETRY:
                breaker.record_failure()
                attempts.add(name, "retry", code=response.code)
                continue
            breaker.record_success()
            return response
        raise ConnectorsExhaustedError(
            f"no connector could authorise transaction {request.idempotency_key}: "
            + "; ".join(f"{a['connector']}: {a['reason']}" for a in attempts.tried),
            idempotency_key=request.idempotency_key, attempts=attempts.tried,
        )

    async def _authorise_one(self, connector: Connector, request: AuthorisationRequest
                             ) -> PspResponse:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await connector.authorise(request)
            except OutcomeUnknownError as exc:
                if connector.retry_safe(Operation.AUTHORISE) and attempt < self.max_attempts:
                    log.info("%s: authorisation %s unanswered (%s); resending (attempt %d)",
                             connector.name, request.idempotency_key, exc, attempt + 1)
                    await self._sleep(self.retry.delay(attempt))
                    continue
                await self._reverse_unknown(connector, request, exc)

    async def _reverse_unknown(self, connector: Connector, request: AuthorisationRequest,
                               cause: OutcomeUnknownError) -> NoReturn:
        reference = cause.fields.get("reference")
        if not isinstance(reference, PspReference):
            reference = PspReference(connector=connector.name,
                                     transaction_id=request.idempotency_key)
        reversal: dict[str, JsonValue] = {
            "connector": connector.name,
            "original": reference.as_dict(),
            "amount": {"minor": request.amount.minor, "currency": request.amount.currency,
                       "numeric": request.amount.numeric,
                       "exponent": request.amount.exponent},
        }
        fields = dict(connector=connector.name, idempotency_key=request.idempotency_key,
                      cause=str(cause))
        try:
            # Sent even if the breaker is open: undoing a possible charge comes first.
            response = await self._with_retry(
                connector, Operation.REVERSE,
                lambda: connector.reverse(reference, request.amount), use_breaker=False,
            )
        except PspError as exc:
            raise ReversalPendingError(
                f"{connector.name}: authorisation {request.idempotency_key} went unanswered "
                f"({cause}) and its reversal failed ({exc}); queue the reversal",
                reversal=reversal, **fields,
            ) from exc
        if response.not_found_by_search:
            # The search may not show a charge made seconds ago: trying the next PSP now
            # could charge the card twice. The queued reversal asks again later.
            raise ReversalPendingError(
                f"{connector.name}: authorisation {request.idempotency_key} went unanswered "
                f"({cause}) and the PSP's search does not show it yet; searches lag, so "
                f"the reversal is queued and no other PSP is tried",
                reversal=reversal, **fields,
            ) from cause
        if response.outcome is Outcome.APPROVE:
            raise AuthorisationReversedError(
                f"{connector.name}: authorisation {request.idempotency_key} went unanswered "
                f"({cause}); reversed (code {response.code})", **fields,
            ) from cause
        raise ReversalPendingError(
            f"{connector.name}: the reversal of {request.idempotency_key} was answered "
            f"{response.code} ({response.message or response.outcome}); queue it again",
            reversal=reversal, **fields,
        ) from cause

    # --- the other operations, on a named connector -------------------------------------

    async def _with_retry(self, connector: Connector, operation: Operation,
                          call: Callable[[], Awaitable[PspResponse]], *,
                          use_breaker: bool = True) -> PspResponse:
        breaker = self.breakers[connector.name]
        if use_breaker:
            breaker.before_call()
        safe = connector.retry_safe(operation)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await call()
            except (OutcomeUnknownError, PspUnreachableError):
                breaker.record_failure()
                if safe and attempt < self.max_attempts:
                    await self._sleep(self.retry.delay(attempt))
                    continue
                raise
            if response.outcome is Outcome.RETRY:
                breaker.record_failure()
                if safe and attempt < self.max_attempts:
                    await self._sleep(self.retry.delay(attempt))
                    continue
                return response
            breaker.record_success()
            return response

    def _connector(self, name: str) -> Connector:
        try:
            return self.connectors[name]
        except KeyError:
            raise ValueError(f"no connector named {name!r}") from None

    async def complete(self, original: PspReference, amount: Amount) -> PspResponse:
        c = self._connector(original.connector)
        return await self._with_retry(c, Operation.COMPLETE, lambda: c.complete(original, amount))

    async def reverse(self, original: PspReference, amount: Amount) -> PspResponse:
        c = self._connector(original.connector)
        return await self._with_retry(c, Operation.REVERSE, lambda: c.reverse(original, amount),
                                      use_breaker=False)

    async def replay_reversal(self, reversal: JsonObject) -> PspResponse:
        """Send a reversal queued from :class:`ReversalPendingError` (the outbox drains these)."""
        try:
            amount, original = reversal["amount"], reversal["original"]
            if not isinstance(amount, Mapping) or not isinstance(original, Mapping):
                raise TypeError("its amount and original are not JSON objects")
            fields: dict[str, Any] = dict(amount)  # Amount checks its own values
            money, reference = Amount(**fields), PspReference.from_dict(original)
        except (LookupError, TypeError, ValueError) as exc:
            raise ValueError(f"a queued reversal needs 'original' (a PSP reference) and "
                             f"'amount' (minor, currency, numeric, exponent): {exc}") from None
        return await self.reverse(reference, money)

    async def refund(self, request: RefundRequest) -> PspResponse:
        c = self._connector(request.original.connector)
        return await self._with_retry(c, Operation.REFUND, lambda: c.refund(request))

    async def advice(self, connector: str, request: AuthorisationRequest) -> PspResponse:
        c = self._connector(connector)
        return await self._with_retry(c, Operation.ADVICE, lambda: c.advice(request))

    async def status(self, original: PspReference) -> PspResponse:
        c = self._connector(original.connector)
        return await self._with_retry(c, Operation.STATUS, lambda: c.status(original))

    async def echo(self, connector: str) -> PspResponse:
        c = self._connector(connector)
        return await self._with_retry(c, Operation.ECHO, c.echo)

    async def aclose(self) -> None:
        for connector in self.connectors.values():
            await connector.aclose()
