"""The PC/SC card reader: pyscard's low-level ``smartcard.scard`` API talking to pcscd.

Why the low-level API: pyscard's ``CardMonitor``/``ReaderMonitor`` run a thread on a
context established once; when pcscd restarts (or a reader is unplugged under them) the
thread dies with its context and nothing notices. Here every PC/SC call goes through a
:class:`_Context` that re-establishes itself when pcscd says the old one is stale, and the
event loop of :meth:`PcscReader.events` is ours, so it reports the readers and cards that
disappeared with pcscd and picks them up again when it is back.

Threading: pyscard blocks. Every call into it is a plain function run in a thread — the
one boundary between the asyncio side and PC/SC. Short calls (connect, transmit, status,
disconnect) run on the reader's own I/O thread (:meth:`PcscReader._blocking`): one hop per
command APDU, with the T=0 GET RESPONSE / Le rounds done inside that hop, and no queueing
behind other users of asyncio's default pool. A whole transaction can run on that thread
instead (:meth:`PcscReader.run_card_job`), with no hop at all: on a fast card the two
thread switches per APDU otherwise cost as much as the exchange itself. Waiting
(``SCardGetStatusChange``, up to ``poll_ms``) runs on the default pool
(:meth:`PcscReader._waiting`) with its own context, so it never delays a card exchange nor
holds the lock of the context that card sessions transmit on; pcsc-lite serialises calls
per context.

Errors: every failure leaves as a :mod:`drivers.reader_errors` leaf, mapped by
:mod:`drivers.pcsc_errors`. A failed transmit is told apart as "card removed" or "reader
gone" by asking the reader for its state (pcscd reports a card that vanished mid-exchange
as a bare transaction failure).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from drivers.apdu import T0Session, exchange_sync
from drivers.base import CardEvent, CardEventKind, ResponseApdu
from drivers.pcsc_errors import code_name, error_for_exception, error_for_hresult
from drivers.reader_errors import (
    CardProtocolError,
    CardRemovedError,
    NoReaderError,
    PcscServiceError,
    ReaderGoneError,
    ReaderTimeoutError,
    _ReaderLeaf,
)
from drivers.scard_api import ScardApi

__all__ = ["NO_PCSCD_MESSAGE", "PNP_NOTIFICATION", "PcscReader", "PcscSession"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What a card wait says when pcscd cannot be reached at all (not an empty reader).
NO_PCSCD_MESSAGE = (
    "the PC/SC service (pcscd) is not running: start it with `sudo systemctl start "
    "pcscd.socket`, or `sudo pcscd` where there is no systemd (scripts/setup installs it)"
)

#: pcsc-lite's pseudo reader whose state changes when a reader is added or removed.
PNP_NOTIFICATION = "\\\\?PnP?\\Notification"

_STALE = frozenset(
    {
        "SCARD_E_NO_SERVICE",
        "SCARD_E_SERVICE_STOPPED",
        "SCARD_E_INVALID_HANDLE",
        "SCARD_F_COMM_ERROR",
        "SCARD_E_UNKNOWN_RES_MNG",
    }
)
_JUST_INSERTED = frozenset({"SCARD_W_UNPOWERED_CARD", "SCARD_W_UNRESPONSIVE_CARD"})
# SCardStatus's "card present" bit (pcsclite.h); pyscard does not export it.
_SCARD_PRESENT = 0x0004
# A transmit that failed with one of these may really be a card pulled out mid-exchange.
_AMBIGUOUS_TRANSMIT = frozenset({"SCARD_E_NOT_TRANSACTED", "SCARD_E_COMM_DATA_LOST"})
# Disconnecting a card that already left: nothing to undo.
_GONE_ON_CLOSE = frozenset(
    {
        "SCARD_W_REMOVED_CARD",
        "SCARD_E_NO_SMARTCARD",
        "SCARD_E_READER_UNAVAILABLE",
        "SCARD_E_INVALID_HANDLE",
        "SCARD_E_NO_SERVICE",
        "SCARD_E_SERVICE_STOPPED",
        "SCARD_F_COMM_ERROR",
    }
)


def _guarded(api_call: Callable[..., T], *args: Any, operation: str, reader: str | None) -> T:
    """Call pyscard; anything it raises leaves as one of our reader errors."""
    try:
        return api_call(*args)
    except _ReaderLeaf:
        raise
    except Exception as exc:
        raise error_for_exception(exc, operation=operation, reader=reader) from exc


class _Context:
    """One PC/SC context, established on first use and again after pcscd restarts."""

    def __init__(self, api: ScardApi) -> None:
        self._api = api
        self._handle: int | None = None
        self._lock = threading.Lock()
        #: How many times a context was established: a change means pcscd restarted.
        self.generation = 0

    def handle(self) -> int:
        with self._lock:
            if self._handle is None:
                hresult, handle = _guarded(
                    self._api.SCardEstablishContext,
                    self._api.SCARD_SCOPE_USER,
                    operation="connecting to pcscd",
                    reader=None,
                )
                if hresult != 0:
                    raise error_for_hresult(hresult, operation="connecting to pcscd")
                self._handle = handle
                self.generation += 1
            return self._handle

    def release(self) -> None:
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            try:
                self._api.SCardReleaseContext(handle)
            except Exception:  # a context that died with pcscd cannot be released; fine
                log.debug("releasing a stale PC/SC context failed", exc_info=True)

    def cancel(self) -> None:
        """Wake a blocked ``SCardGetStatusChange`` on this context (thread-safe in PC/SC)."""
        handle = self._handle
        if handle is not None:
            try:
                self._api.SCardCancel(handle)
            except Exception:
                log.debug("cancelling a PC/SC wait failed", exc_info=True)

    def call(self, operation: str, reader: str | None, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(context, *args)``; on a stale context, re-establish it and try once more."""
        for attempt in (1, 2):
            result = _guarded(fn, self.handle(), *args, operation=operation, reader=reader)
            hresult = result[0] if isinstance(result, tuple | list) else result
            if attempt == 1 and code_name(hresult) in _STALE:
                log.info("PC/SC context is stale (%s); re-establishing", code_name(hresult))
                self.release()
                continue
            return result
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class _ReaderState:
    present: bool
    atr: bytes
    events: int  # pcsc-lite counts card events in the upper 16 bits of the state


class PcscSession(T0Session):
    """A powered card in a PC/SC reader; :meth:`close` powers it off."""

    def __init__(self, owner: PcscReader, reader: str, atr: bytes, card: int, protocol: int):
        super().__init__(reader, atr)
        self._owner = owner
        self._card = card
        self._protocol = protocol

    async def transmit(self, apdu: bytes) -> ResponseApdu:
        """One thread hop for the whole T=0 exchange (see the module docstring)."""
        command = self._check_command(apdu)
        return await self._owner._blocking(exchange_sync, self._transmit_sync, command, self.reader)

    async def _transmit_raw(self, command: bytes) -> ResponseApdu:
        return await self._owner._blocking(self._transmit_sync, command)

    def _transmit_sync(self, command: bytes) -> ResponseApdu:
        # Once per APDU: _guarded inlined, and the operation named only on failure.
        try:
            answer = self._owner.api.SCardTransmit(self._card, self._protocol, list(command))
        except _ReaderLeaf:
            raise
        except Exception as exc:
            raise error_for_exception(
                exc, operation=f"sending INS {command[1]:02X} to the card", reader=self.reader
            ) from exc
        hresult, response = answer
        if hresult != 0:
            operation = f"sending INS {command[1]:02X} to the card"
            if code_name(hresult) in _AMBIGUOUS_TRANSMIT:
                self._raise_if_card_gone(operation)
            raise error_for_hresult(hresult, operation=operation, reader=self.reader)
        if len(response) < 2:
            raise CardProtocolError(
                f"the card answered INS {command[1]:02X} with {len(response)} bytes, "
                "no status word",
                reader=self.reader,
            )
        return ResponseApdu(bytes(response[:-2]), response[-2], response[-1])

    def _raise_if_card_gone(self, operation: str) -> None:
        api = self._owner.api
        try:
            hresult, _name, state, _protocol, _atr = api.SCardStatus(self._card)
        except Exception:
            return
        name = code_name(hresult)
        if name == "SCARD_E_READER_UNAVAILABLE":
            raise ReaderGoneError(f"{operation}: the reader went away", reader=self.reader)
        if hresult != 0 or not state & _SCARD_PRESENT:
            raise CardRemovedError(
                f"{operation}: the card was removed; insert it again and restart",
                reader=self.reader,
                hresult=hresult,
            )

    async def _close(self) -> None:
        await self._owner._blocking(self._close_sync)

    def _close_sync(self) -> None:
        api = self._owner.api
        hresult = _guarded(
            api.SCardDisconnect,
            self._card,
            api.SCARD_UNPOWER_CARD,
            operation="powering the card off",
            reader=self.reader,
        )
        if hresult != 0 and code_name(hresult) not in _GONE_ON_CLOSE:
            raise error_for_hresult(hresult, operation="powering the card off", reader=self.reader)


class PcscReader:
    """:class:`~drivers.base.CardReader` over pcscd.

    ``api`` is pyscard's ``smartcard.scard`` module; tests hand in a fake with the same
    functions to play pcscd restarts and unplugged readers. ``exclusive`` connects with
    ``SCARD_SHARE_EXCLUSIVE`` so no other process interleaves commands with a payment.
    """

    def __init__(
        self,
        *,
        api: ScardApi | None = None,
        exclusive: bool = True,
        poll_ms: int = 250,
        backoff: tuple[float, float] = (0.1, 2.0),
    ) -> None:
        if api is None:
            from smartcard import scard

            api = scard
        self.api = api
        self._share = api.SCARD_SHARE_EXCLUSIVE if exclusive else api.SCARD_SHARE_SHARED
        self._poll_ms = poll_ms
        self._backoff = backoff
        self._context = _Context(api)
        # Status probes get a context of their own: a probe never waits behind a card
        # exchange, nor an exchange behind a probe.
        self._probe_context = _Context(api)
        self._io_thread: int | None = None
        self._io = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="pcsc-io", initializer=self._mark_io_thread
        )

    # -- the thread boundary -----------------------------------------------------------

    def _mark_io_thread(self) -> None:
        self._io_thread = threading.get_ident()

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """A short blocking pyscard call, on the reader's I/O thread.

        Code already running on that thread (a job started with :meth:`run_card_job`)
        calls straight through: that thread exists to block on the card.
        """
        if threading.get_ident() == self._io_thread:
            return fn(*args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, fn, *args)

    async def run_card_job(self, job: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``job()`` — a whole card transaction — on the reader's I/O thread.

        The job gets an event loop of its own on that thread, and every PC/SC call it makes
        through this reader runs inline, with no thread hop per APDU; the caller's loop
        (the UI's, say) stays free and simply awaits the result. Whatever the job uses
        (PIN pad, PSP connectors) must be opened inside it, on its loop. One job at a time:
        others wait for the thread.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, asyncio.run, job())

    async def _waiting(self, fn: Callable[..., T], *args: Any) -> T:
        """A status wait (up to ``poll_ms``), on the default pool so it delays no exchange."""
        return await asyncio.to_thread(fn, *args)

    # -- CardReader ----------------------------------------------------------------------

    async def list_readers(self) -> list[str]:
        return await self._blocking(self._list_sync, self._context)

    def _list_sync(self, context: _Context) -> list[str]:
        hresult, readers = context.call(
            "listing readers", None, self.api.SCardListReaders, []
        )
        if code_name(hresult) == "SCARD_E_NO_READERS_AVAILABLE":
            return []
        if hresult != 0:
            raise error_for_hresult(hresult, operation="listing readers")
        return [str(name) for name in readers]

    async def card_states(self) -> dict[str, bool]:
        """Each reader pcscd knows and whether a card is in it now, without waiting.

        A status probe for the counter's status bar; :class:`PcscServiceError` when pcscd
        does not answer.
        """
        return await self._waiting(self._card_states_sync)

    def _card_states_sync(self) -> dict[str, bool]:
        api = self.api
        for _attempt in (1, 2):
            readers = self._list_sync(self._probe_context)
            if not readers:
                return {}
            hresult, states = self._probe_context.call(
                "probing the readers", None, api.SCardGetStatusChange, 0,
                [(name, api.SCARD_STATE_UNAWARE) for name in readers])
            name = code_name(hresult)
            if name == "SCARD_E_UNKNOWN_READER":
                continue  # a reader left between listing and asking: list again
            if hresult != 0 and name != "SCARD_E_TIMEOUT":
                raise error_for_hresult(hresult, operation="probing the readers")
            return {str(entry[0]): bool(entry[1] & api.SCARD_STATE_PRESENT)
                    for entry in states
                    if not entry[1] & (api.SCARD_STATE_UNKNOWN | api.SCARD_STATE_IGNORE)}
        return {}

    async def connect(self, reader: str) -> PcscSession:
        card, protocol, atr = await self._blocking(self._connect_sync, reader)
        return PcscSession(self, reader, atr, card, protocol)

    def _connect_sync(self, reader: str) -> tuple[int, int, bytes]:
        api = self.api
        operation = "powering the card on"
        for attempt in range(3):
            hresult, card, protocol = self._context.call(
                operation,
                reader,
                api.SCardConnect,
                reader,
                self._share,
                api.SCARD_PROTOCOL_T0 | api.SCARD_PROTOCOL_T1,
            )
            # A card inserted a moment ago may not be powered by pcscd yet: give it time.
            if code_name(hresult) not in _JUST_INSERTED or attempt == 2:
                break
            time.sleep(0.1 * (attempt + 1))
        if hresult != 0:
            raise error_for_hresult(hresult, operation=operation, reader=reader)
        hresult, _name, _state, _protocol, atr = _guarded(
            api.SCardStatus, card, operation="reading the ATR", reader=reader
        )
        if hresult != 0 or not atr:
            _guarded(
                api.SCardDisconnect, card, api.SCARD_UNPOWER_CARD, operation="", reader=reader
            )
            if hresult != 0:
                raise error_for_hresult(hresult, operation="reading the ATR", reader=reader)
            raise CardProtocolError("the card gave an empty ATR", reader=reader)
        return card, protocol, bytes(atr)

    async def wait_for_card(self, reader: str | None = None, timeout: float | None = None) -> str:
        if reader is not None:
            known = await self.list_readers()
            if reader not in known:
                raise NoReaderError(
                    f"no reader named {reader!r}; the readers are: "
                    + (", ".join(repr(name) for name in known) or "none (is one plugged in?)"),
                    reader=reader,
                )
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        context = _Context(self.api)
        states: dict[str, int] = {}
        try:
            while True:
                try:
                    snapshot = await self._waiting(self._wait_change_sync, context, states)
                except PcscServiceError as exc:
                    if context.generation == 0:
                        # Never reached: pcscd is not running at all. Say so now, not as
                        # "no card" after the whole timeout.
                        raise PcscServiceError(
                            NO_PCSCD_MESSAGE, reader=reader, operation="connecting to pcscd",
                            hresult=exc.fields.get("hresult"),
                        ) from exc
                    # pcscd restarting: keep waiting for it (and the card) until the deadline
                    await self._waiting(context.release)
                    snapshot = {}
                    await asyncio.sleep(self._backoff[0] * random.uniform(0.5, 1.5))
                snapshot = snapshot or {}
                states = {name: state for name, (state, _) in snapshot.items()}
                for name, (state, _atr) in snapshot.items():
                    if name == PNP_NOTIFICATION or (reader is not None and name != reader):
                        continue
                    if state & self.api.SCARD_STATE_PRESENT:
                        return name
                if deadline is not None and loop.time() >= deadline:
                    raise ReaderTimeoutError(
                        f"no card was presented within {timeout} s", reader=reader
                    )
        finally:
            context.cancel()
            await self._waiting(context.release)

    async def events(self) -> AsyncIterator[CardEvent]:
        """Reader and card events; the first ones describe what is there already.

        When pcscd goes away every known reader is reported removed (with its card), and
        the loop keeps trying to reconnect with jittered backoff; readers come back as
        ``READER_ADDED`` when pcscd does.
        """
        context = _Context(self.api)
        known: dict[str, _ReaderState] = {}
        states: dict[str, int] = {}
        delay = self._backoff[0]
        try:
            while True:
                generation = context.generation
                try:
                    snapshot = await self._waiting(self._wait_change_sync, context, states)
                except PcscServiceError:
                    for event in _diff(known, {}):
                        yield event
                    known, states = {}, {}
                    await self._waiting(context.release)
                    await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, self._backoff[1])
                    continue
                delay = self._backoff[0]
                if generation and context.generation != generation:
                    # pcscd restarted between two polls: every reader and card we knew is
                    # gone with the old daemon (sessions on it are dead); report it so.
                    for event in _diff(known, {}):
                        yield event
                    known = {}
                if snapshot is None:
                    continue
                states = {name: state for name, (state, _) in snapshot.items()}
                current = {
                    name: _ReaderState(
                        bool(state & self.api.SCARD_STATE_PRESENT), atr, state >> 16
                    )
                    for name, (state, atr) in snapshot.items()
                    if name != PNP_NOTIFICATION
                }
                for event in _diff(known, current):
                    yield event
                known = current
        finally:
            context.cancel()
            await self._waiting(context.release)

    def _wait_change_sync(
        self, context: _Context, states: dict[str, int]
    ) -> dict[str, tuple[int, bytes]] | None:
        """Block until a reader or card changes (or ``poll_ms``); the new states and ATRs.

        ``None`` when the reader list changed under the call: no picture, poll again.
        """
        api = self.api
        readers = self._list_sync(context)
        pnp_state = states.get(PNP_NOTIFICATION, api.SCARD_STATE_UNAWARE)
        wanted = [(name, states.get(name, api.SCARD_STATE_UNAWARE)) for name in readers]
        wanted.append((PNP_NOTIFICATION, pnp_state))
        hresult, new_states = context.call(
            "waiting for a card", None, api.SCardGetStatusChange, self._poll_ms, wanted
        )
        name = code_name(hresult)
        if name == "SCARD_E_UNKNOWN_READER":
            return None  # a reader left between listing and waiting: list again
        if hresult != 0 and name != "SCARD_E_TIMEOUT":
            raise error_for_hresult(hresult, operation="waiting for a card")
        snapshot: dict[str, tuple[int, bytes]] = {}
        for entry in new_states:
            reader, event_state, atr = entry[0], entry[1], entry[2]
            if reader != PNP_NOTIFICATION and event_state & (
                api.SCARD_STATE_UNKNOWN | api.SCARD_STATE_IGNORE
            ):
                continue  # the reader went away during the wait
            snapshot[reader] = (event_state & ~api.SCARD_STATE_CHANGED, bytes(atr))
        return snapshot

    async def aclose(self) -> None:
        """Release the command context and the I/O thread (close sessions first)."""
        await self._blocking(self._context.release)
        await self._waiting(self._probe_context.release)
        self._io.shutdown(wait=False)


def _diff(before: dict[str, _ReaderState], after: dict[str, _ReaderState]) -> list[CardEvent]:
    """The events that turn the ``before`` picture into the ``after`` one, in order."""
    events: list[CardEvent] = []
    for name, old in before.items():
        if name == PNP_NOTIFICATION or name in after:
            continue
        if old.present:
            events.append(CardEvent(CardEventKind.REMOVED, name))
        events.append(CardEvent(CardEventKind.READER_REMOVED, name))
    for name, new in after.items():
        if name == PNP_NOTIFICATION:
            continue
        old_state = before.get(name)
        if old_state is None:
            events.append(CardEvent(CardEventKind.READER_ADDED, name))
            if new.present:
                events.append(CardEvent(CardEventKind.INSERTED, name, new.atr))
            continue
        swapped = old_state.present and new.present and (
            old_state.atr != new.atr or old_state.events != new.events
        )
        if old_state.present and (not new.present or swapped):
            events.append(CardEvent(CardEventKind.REMOVED, name))
        if new.present and (not old_state.present or swapped):
            events.append(CardEvent(CardEventKind.INSERTED, name, new.atr))
    return events

