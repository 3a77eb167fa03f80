"""The ISO 8583 connector: one multiplexed TCP (optionally TLS) link to an acquirer host.

Requests go out as 2-byte-length-prefixed frames (:mod:`.iso8583_spec`); one reader task
matches answers to requests by response MTI and STAN, so several requests may be in
flight. What the link does on trouble:

* cannot connect → :class:`PspUnreachableError` (nothing was sent; route elsewhere);
* no answer within ``timeout_s`` → :class:`PspTimeoutError`, an :class:`OutcomeUnknownError`;
* the host closes the link, or sends a truncated or undecodable frame → the link is torn
  down and every request waiting on it gets :class:`OutcomeUnknownError` /
  :class:`MalformedResponseError` carrying its :class:`PspReference`, so the caller can reverse
  it or ask for its status: no transaction is lost;
* an answer nobody waits for (a duplicate, a late answer) is logged and dropped.

With a MAC key (``Iso8583Settings.mac``) every request carries DE 64/128 and an answer
whose MAC is missing or wrong is treated like a garbled one (:class:`MalformedResponseError`).

Reversals, completions and advices are resent as repeats (0401, 0221): the very first
message with the MTI's last digit set to 1, same STAN and DE 7 (ISO 8583 §4.1.3), so the
host recognises them and answers once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import iso8583

from edge_sync.connectors.base import (
    Amount,
    AuthorisationRequest,
    Operation,
    Outcome,
    PspReference,
    PspResponse,
    RefundRequest,
)
from edge_sync.connectors.classify import classify_iso
from edge_sync.connectors.errors import (
    MalformedResponseError,
    OutcomeUnknownError,
    PspRejectedError,
    PspTimeoutError,
    PspUnreachableError,
)
from edge_sync.connectors.iso8583_mac import (
    MacError,
    MessageAuthenticator,
    placeholder,
    seal,
)
from edge_sync.connectors.iso8583_mac import check as mac_check
from edge_sync.connectors.iso8583_messages import (
    HostContext,
    StanCounter,
    StanSource,
    build_authorisation,
    build_completion,
    build_echo,
    build_refund,
    build_reversal,
    build_status,
    read_answer,
)
from edge_sync.connectors.iso8583_spec import (
    DE48_IDEMPOTENCY_KEY,
    MTI_RESPONSE,
    decode,
    decode_de48,
    encode,
    frame,
)

__all__ = ["Iso8583Connector", "Iso8583Settings"]

log = logging.getLogger(__name__)

_REPEATS_KEPT = 1024
_RETRY_SAFE = frozenset({Operation.REVERSE, Operation.ADVICE, Operation.COMPLETE,
                         Operation.STATUS, Operation.ECHO})  # fmt: skip


@dataclass(frozen=True)
class Iso8583Settings:
    """One acquirer host, as values (the terminal builds it from ``[[psp]]``)."""

    context: HostContext
    host: str
    port: int
    p2pe_public_key: bytes
    timeout_s: float = 2.0
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    #: The acquirer's MAC key (DE 64/128, :mod:`.iso8583_mac`): every request carries a
    #: MAC and every answer must carry a valid one. ``None`` only for a loopback simulator.
    mac: MessageAuthenticator | None = None

    @property
    def name(self) -> str:
        return self.context.connector


class _LinkDown(Exception):
    """Internal: why the link failed under the waiting requests (mapped per request)."""

    def __init__(self, reason: str, *, malformed: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.malformed = malformed


class _Link:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending: dict[tuple[str, str], asyncio.Future[dict[str, str]]] = {}
        self.task: asyncio.Task[None] | None = None
        self.closed = False


class Iso8583Connector:
    """An ISO 8583 acquirer host behind the :class:`~edge_sync.connectors.base.Connector`
    Protocol."""

    def __init__(
        self,
        settings: Iso8583Settings,
        *,
        stans: StanSource | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._stans = stans or StanCounter()
        self._clock = clock
        self._link: _Link | None = None
        self._lock = asyncio.Lock()
        # First message of each repeatable exchange (reversal, completion, advice), so that
        # a resend is its exact repeat.
        self._repeats: dict[tuple[Operation, str], dict[str, str]] = {}

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def stans(self) -> StanSource:
        """Where this connector's STANs come from (in memory unless the terminal gave one)."""
        return self._stans

    def retry_safe(self, operation: Operation) -> bool:
        # Financial requests (0100/0200) have no repeat form the host must deduplicate;
        # after an unknown outcome they are reversed, never resent.
        return operation in _RETRY_SAFE

    # --- operations ---------------------------------------------------------------------

    async def authorise(self, request: AuthorisationRequest) -> PspResponse:
        return await self._financial(request, advice=False)

    async def advice(self, request: AuthorisationRequest) -> PspResponse:
        return await self._financial(request, advice=True)

    async def _financial(self, request: AuthorisationRequest, *, advice: bool) -> PspResponse:
        operation = Operation.ADVICE if advice else Operation.AUTHORISE
        key = request.idempotency_key
        fields = self._repeat_of(operation, key) if advice else None
        if fields is None:
            envelope = request.card.encryptor.envelope_for(self.settings.p2pe_public_key,
                                                           key.encode())
            fields = build_authorisation(self.settings.context, request,
                                         stan=self._stans.next_stan(), now=self._clock(),
                                         p2pe_envelope=envelope, advice=advice)
            if advice:
                self._remember(operation, key, fields)
        reference = self._reference(operation, fields, key, request.amount)
        return await self._exchange(fields, operation, reference)

    def _repeat_of(self, operation: Operation, key: str) -> dict[str, str] | None:
        """The first message of a repeatable exchange, as its repeat (ISO 8583 §4.1.3:
        the same message, same STAN and DE 7, MTI xxx1), or ``None`` the first time."""
        first = self._repeats.get((operation, key))
        if first is None:
            return None
        return {**first, "t": first["t"][:3] + "1"}

    def _remember(self, operation: Operation, key: str, fields: dict[str, str]) -> None:
        self._repeats[(operation, key)] = fields
        while len(self._repeats) > _REPEATS_KEPT:
            self._repeats.pop(next(iter(self._repeats)))

    async def complete(self, original: PspReference, amount: Amount) -> PspResponse:
        key = original.transaction_id
        fields = self._repeat_of(Operation.COMPLETE, key)
        if fields is None:
            fields = build_completion(self.settings.context, original, amount,
                                      stan=self._stans.next_stan(), now=self._clock())
            self._remember(Operation.COMPLETE, key, fields)
        reference = self._reference(Operation.COMPLETE, fields, key, amount)
        return await self._exchange(fields, Operation.COMPLETE, reference)

    async def reverse(self, original: PspReference, amount: Amount) -> PspResponse:
        key = original.transaction_id
        fields = self._repeat_of(Operation.REVERSE, key)
        if fields is None:
            fields = build_reversal(self.settings.context, original, amount,
                                    stan=self._stans.next_stan(), now=self._clock())
            self._remember(Operation.REVERSE, key, fields)
        reference = self._reference(Operation.REVERSE, fields, key, amount)
        response = await self._exchange(fields, Operation.REVERSE, reference)
        if response.code == "25":
            # "Unable to locate original": the host never saw it, so nothing is left to undo.
            response = replace(response, outcome=Outcome.APPROVE)
        return response

    async def refund(self, request: RefundRequest) -> PspResponse:
        fields = build_refund(self.settings.context, request, stan=self._stans.next_stan(),
                              now=self._clock())
        reference = self._reference(Operation.REFUND, fields, request.idempotency_key,
                                    request.amount)
        return await self._exchange(fields, Operation.REFUND, reference)

    async def status(self, original: PspReference) -> PspResponse:
        fields = build_status(self.settings.context, original, stan=self._stans.next_stan(),
                              now=self._clock())
        reference = replace(original, connector=self.name)
        return await self._exchange(fields, Operation.STATUS, reference)

    async def echo(self) -> PspResponse:
        fields = build_echo(self.settings.context, stan=self._stans.next_stan(),
                            now=self._clock())
        reference = self._reference(Operation.ECHO, fields, "", None)
        return await self._exchange(fields, Operation.ECHO, reference)

    async def aclose(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            self._tear_down(link, _LinkDown("the connector was closed", malformed=False))
            if link.task is not None:
                link.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await link.task
            with contextlib.suppress(OSError, ssl.SSLError):
                await link.writer.wait_closed()

    # --- the link -----------------------------------------------------------------------

    def _reference(self, operation: Operation, fields: dict[str, str], key: str,
                   amount: Amount | None) -> PspReference:
        return PspReference(
            connector=self.name, transaction_id=key, operation=operation.value,
            mti=fields["t"], stan=fields["11"], transmitted_at=fields["7"],
            rrn=fields.get("37"), approval_code=fields.get("38"),
            amount_minor=amount.minor if amount else None,
            currency=amount.currency if amount else None,
        )

    async def _connect(self) -> _Link:
        async with self._lock:
            if self._link is not None and not self._link.closed:
                return self._link
            settings = self.settings
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        settings.host, settings.port, ssl=settings.ssl_context,
                        server_hostname=settings.server_hostname
                        if settings.ssl_context else None,
                    ),
                    settings.timeout_s,
                )
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                raise PspUnreachableError(
                    f"{self.name}: cannot connect to {settings.host}:{settings.port} "
                    f"({type(exc).__name__}: {exc}); nothing was sent, try another connector",
                    connector=self.name, host=settings.host, port=settings.port,
                ) from exc
            link = _Link(reader, writer)
            link.task = asyncio.create_task(self._read_loop(link),
                                            name=f"iso8583-{self.name}-reader")
            self._link = link
            return link

    def _tear_down(self, link: _Link, failure: _LinkDown) -> None:
        if link.closed:
            return
        link.closed = True
        for future in link.pending.values():
            if not future.done():
                future.set_exception(failure)
        link.pending.clear()
        with contextlib.suppress(OSError, RuntimeError):
            link.writer.close()
        if self._link is link:
            self._link = None

    async def _read_loop(self, link: _Link) -> None:
        try:
            while True:
                try:
                    head = await link.reader.readexactly(2)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        raise _LinkDown("the length prefix was cut short",
                                        malformed=True) from None
                    raise _LinkDown("the host closed the connection", malformed=False) from None
                (length,) = struct.unpack(">H", head)
                try:
                    body = await link.reader.readexactly(length)
                except asyncio.IncompleteReadError as exc:
                    raise _LinkDown(
                        f"truncated answer: the prefix announced {length} bytes, "
                        f"{len(exc.partial)} arrived before the connection closed",
                        malformed=True,
                    ) from None
                try:
                    fields = decode(body)
                    unauthentic = self._mac_problem(body, fields)
                    key = (str(fields.get("t", "")), str(fields.get("11", "")))
                except (iso8583.DecodeError, ValueError, LookupError, TypeError,
                        UnicodeError, RecursionError) as exc:
                    # Whatever the codec raises on hostile bytes: the link is torn down
                    # and every waiting request learns its outcome is unknown, rather
                    # than a reader task dying and leaving them to time out.
                    raise _LinkDown(f"undecodable answer ({type(exc).__name__})",
                                    malformed=True) from None
                future = link.pending.pop(key, None)
                if future is None or future.done():
                    log.warning("%s: dropped an answer nobody waits for (MTI %s STAN %s): "
                                "a duplicate or a late answer", self.name, *key)
                    continue
                if unauthentic is not None:
                    # An answer that may have been altered on the way is no answer: the
                    # outcome is unknown and the router reverses it.
                    future.set_exception(_LinkDown(unauthentic, malformed=True))
                    continue
                future.set_result(fields)
        except _LinkDown as failure:
            self._tear_down(link, failure)
        except (OSError, ssl.SSLError) as exc:
            self._tear_down(link, _LinkDown(f"the link failed ({exc})", malformed=False))

    def _mac_problem(self, body: bytes, fields: dict[str, str]) -> str | None:
        if self.settings.mac is None:
            return None
        try:
            mac_check(body, fields, self.settings.mac)
        except MacError as exc:
            return str(exc)
        return None

    def _encode(self, fields: dict[str, str]) -> bytes:
        """The framed message, with its MAC when the link has a key."""
        if self.settings.mac is None:
            return frame(encode(fields))
        return frame(seal(encode(placeholder(fields)), self.settings.mac))

    async def _exchange(self, fields: dict[str, str], operation: Operation,
                        reference: PspReference) -> PspResponse:
        raw = self._encode(fields)  # a ValueError here is a caller mistake: nothing sent
        link = await self._connect()
        mti, stan = fields["t"], fields["11"]
        answer_key = (MTI_RESPONSE[mti], stan)
        future: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        link.pending[answer_key] = future
        where: dict[str, object] = dict(connector=self.name, operation=operation.value, stan=stan,
                     idempotency_key=reference.transaction_id, reference=reference)
        try:
            link.writer.write(raw)
            await link.writer.drain()
        except (OSError, ssl.SSLError) as exc:
            self._tear_down(link, _LinkDown(f"send failed ({exc})", malformed=False))
        try:
            answer = await asyncio.wait_for(future, self.settings.timeout_s)
        except TimeoutError:
            link.pending.pop(answer_key, None)
            raise PspTimeoutError(
                f"{self.name}: no answer to {mti} STAN {stan} within "
                f"{self.settings.timeout_s:g} s; the outcome is unknown", **where,
            ) from None
        except _LinkDown as failure:
            error = MalformedResponseError if failure.malformed else OutcomeUnknownError
            raise error(
                f"{self.name}: {failure.reason} while waiting for the answer to {mti} "
                f"STAN {stan}; the outcome is unknown", **where,
            ) from None
        return self._response(answer, operation, reference, where)

    def _response(self, answer: dict[str, str], operation: Operation,
                  reference: PspReference, where: dict[str, object]) -> PspResponse:
        try:
            parsed = read_answer(answer)
            echoed = decode_de48(answer.get("48", "")).get(DE48_IDEMPOTENCY_KEY)
        except (ValueError, LookupError, TypeError) as exc:
            raise MalformedResponseError(f"{self.name}: unreadable answer: {exc}",
                                         **where) from None
        if echoed is not None and echoed != reference.transaction_id:
            raise MalformedResponseError(
                f"{self.name}: the answer to STAN {reference.stan} names another "
                "transaction; the outcome of this one is unknown", **where,
            )
        if parsed.code == "30":
            raise PspRejectedError(
                f"{self.name}: the host rejected {answer.get('t')} as a format error "
                f"({parsed.message or 'no detail'}); this is a bug, do not resend", **where,
            )
        reference = replace(
            reference,
            approval_code=parsed.approval_code or reference.approval_code,
            rrn=parsed.rrn or reference.rrn,
        )
        return PspResponse(
            outcome=classify_iso(parsed.code), code=parsed.code, message=parsed.message,
            operation=operation, reference=reference, emv_data=parsed.emv_data,
            issuer_data_malformed=parsed.emv_malformed, replayed=parsed.replayed,
        )
