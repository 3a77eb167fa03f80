"""A scripted connector for tests of routing and of the terminal (like httpcore's mock).

Each operation pops its next scripted result: a :class:`PspResponse` is returned, an
exception raised; an empty script approves. ``calls`` records ``(operation, key)``.
Subclass it to inject behaviour a script cannot express.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from edge_sync.connectors.base import (
    Amount,
    AuthorisationRequest,
    Operation,
    Outcome,
    PspReference,
    PspResponse,
    RefundRequest,
)

__all__ = ["ScriptedConnector", "response"]


def response(outcome: Outcome = Outcome.APPROVE, code: str = "00",
             operation: Operation = Operation.AUTHORISE, connector: str = "fake",
             key: str = "") -> PspResponse:
    """A response value for scripts."""
    return PspResponse(outcome=outcome, code=code, message="", operation=operation,
                       reference=PspReference(connector=connector, transaction_id=key,
                                              operation=operation.value))


class ScriptedConnector:
    def __init__(self, name: str,
                 script: Mapping[Operation, Sequence[PspResponse | Exception]] | None = None,
                 *, retry_safe: Iterable[Operation] = (Operation.REVERSE, Operation.STATUS,
                                                       Operation.ECHO, Operation.ADVICE,
                                                       Operation.COMPLETE)) -> None:
        self._name = name
        self.script = {op: list(items) for op, items in (script or {}).items()}
        self._safe = frozenset(retry_safe)
        self.calls: list[tuple[Operation, str]] = []
        self.closed = False

    @property
    def name(self) -> str:
        return self._name

    def retry_safe(self, operation: Operation) -> bool:
        return operation in self._safe

    def _next(self, operation: Operation, key: str) -> PspResponse:
        self.calls.append((operation, key))
        items = self.script.get(operation)
        item: PspResponse | Exception = items.pop(0) if items else response(
            operation=operation)
        if isinstance(item, Exception):
            raise item
        return replace(item, operation=operation,
                       reference=replace(item.reference, connector=self._name,
                                         transaction_id=key))

    async def authorise(self, request: AuthorisationRequest) -> PspResponse:
        return self._next(Operation.AUTHORISE, request.idempotency_key)

    async def advice(self, request: AuthorisationRequest) -> PspResponse:
        return self._next(Operation.ADVICE, request.idempotency_key)

    async def complete(self, original: PspReference, amount: Amount) -> PspResponse:
        return self._next(Operation.COMPLETE, original.transaction_id)

    async def reverse(self, original: PspReference, amount: Amount) -> PspResponse:
        return self._next(Operation.REVERSE, original.transaction_id)

    async def refund(self, request: RefundRequest) -> PspResponse:
        return self._next(Operation.REFUND, request.idempotency_key)

    async def status(self, original: PspReference) -> PspResponse:
        return self._next(Operation.STATUS, original.transaction_id)

    async def echo(self) -> PspResponse:
        return self._next(Operation.ECHO, "")

    async def aclose(self) -> None:
        self.closed = True
