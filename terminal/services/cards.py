"""Card sessions for the terminal's use cases.

A use case gets a card reader from the services: the one the caller injected (an
in-process simulated reader, a test's scripted reader), or the PC/SC reader through pcscd.
:func:`run_card_job` runs a whole card job either on the caller's loop (injected reader)
or on the PC/SC reader's own I/O thread, where its APDUs need no thread hop
(:meth:`drivers.pcsc.PcscReader.run_card_job`).

The counter's status bar asks a :class:`ReaderProbe` what the readers hold now (no reader,
waiting for a card, card in): :class:`PcscReaderProbe` asks pcscd without waiting;
:class:`~terminal.services.fake.ScriptedReaderProbe` plays states in unit tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

from drivers.base import CardReader, CardSession
from drivers.errors import ReaderError
from terminal.emv.cvm import OnlinePinRequest, PinCallback
from terminal.emv.errors import NoApplicationError
from terminal.emv.offline_pin import OfflinePinCallback, OfflinePinRequest
from terminal.emv.selection import Candidate, Chooser, choose_first

__all__ = [
    "CardStates",
    "InjectedReaderProbe",
    "PcscReaderProbe",
    "PinPadEntry",
    "ReaderProbe",
    "ReaderState",
    "ReaderStatus",
    "aid_chooser",
    "card_session",
    "open_pcsc_reader",
    "pinpad_entry",
    "reader_probe_for",
    "run_card_job",
]

T = TypeVar("T")


def open_pcsc_reader() -> CardReader:
    """The PC/SC reader (pyscard through pcscd); imported only when a card is needed."""
    from drivers.pcsc import PcscReader

    return PcscReader()


@asynccontextmanager
async def card_session(reader: CardReader, reader_name: str | None, timeout: float
                       ) -> AsyncIterator[CardSession]:
    """Wait for a card in ``reader_name`` (or any reader) and hold a session on it."""
    name = await reader.wait_for_card(reader_name, timeout=timeout)
    session = await reader.connect(name)
    try:
        yield session
    finally:
        await session.close()


def run_card_job(reader: CardReader | None,
                 job: Callable[[CardReader], Coroutine[Any, Any, T]]) -> T:
    """Run ``job`` to completion from synchronous code (the CLI).

    With an injected ``reader`` the job runs on a new event loop here; without one it runs
    on the PC/SC reader's I/O thread, and the reader is closed afterwards.
    """
    if reader is not None:
        return asyncio.run(job(reader))
    pcsc = open_pcsc_reader()
    run_on_thread: Callable[..., Any] | None = getattr(pcsc, "run_card_job", None)

    async def on_reader_thread() -> T:
        try:
            if run_on_thread is None:
                return await job(pcsc)
            result: T = await run_on_thread(lambda: job(pcsc))
            return result
        finally:
            closer = getattr(pcsc, "aclose", None)
            if closer is not None:
                await closer()

    return asyncio.run(on_reader_thread())


def aid_chooser(aid_hex: str | None) -> Chooser:
    """The application choice: the AID (or prefix) asked for, else the card's priority.

    ``ValueError`` when ``aid_hex`` is not hexadecimal (a usage mistake of the caller).
    """
    if not aid_hex:
        return choose_first
    try:
        wanted = bytes.fromhex(aid_hex)
    except ValueError:
        raise ValueError(f"--aid {aid_hex!r} is not hexadecimal") from None

    async def choose(candidates: Sequence[Candidate]) -> Candidate:
        for candidate in candidates:
            if candidate.aid.startswith(wanted):
                return candidate
        offered = ", ".join(f"{c.aid.hex().upper()} ({c.display_name})" for c in candidates)
        raise NoApplicationError(
            f"the card has no application {aid_hex.upper()}; it offers {offered}")

    return choose


@dataclass(frozen=True)
class PinPadEntry:
    """The kernel's two PIN callbacks over one serial PIN pad: online PIN (enciphered under
    DUKPT for the issuer) and offline enciphered PIN (enciphered for the card itself)."""

    online: PinCallback
    offline: OfflinePinCallback


@asynccontextmanager
async def pinpad_entry(port: str, baud: int, pin_timeout_s: float
                       ) -> AsyncIterator[PinPadEntry]:
    """The serial PIN pad on ``port``: the PIN is entered and enciphered on the pad; the
    terminal only carries the block (and the KSN) to the issuer or the card."""
    from drivers.pinpad.serial_pinpad import SerialPinPad

    async with SerialPinPad(port, baud) as pad:

        async def online(request: OnlinePinRequest) -> Any:
            return await pad.get_pin(request.pan, request.amount, request.currency_numeric,
                                     timeout_s=pin_timeout_s)

        async def offline(request: OfflinePinRequest) -> bytes:
            return await pad.encipher_pin_for_card(
                request.modulus, request.exponent, request.challenge, request.amount,
                request.currency_numeric, timeout_s=pin_timeout_s)

        yield PinPadEntry(online, offline)


class ReaderState(StrEnum):
    """What a reader holds, as the counter shows it."""

    NO_READER = "no_reader"  # no reader attached, or no PC/SC service to ask
    WAITING = "waiting"  # a reader, no card in it
    CARD_IN = "card_in"


@dataclass(frozen=True)
class ReaderStatus:
    """One reader's state now; ``reader`` is ``None`` when there is no reader at all and
    ``detail`` then says why (no pcscd, nothing plugged in)."""

    state: ReaderState
    reader: str | None = None
    detail: str = ""


@runtime_checkable
class ReaderProbe(Protocol):
    """Asks the readers what they hold, without waiting for a change."""

    async def probe(self) -> list[ReaderStatus]:
        """One status per reader; a single ``NO_READER`` status when there is none."""
        ...


class CardStates(Protocol):
    """What :class:`PcscReaderProbe` asks of a reader (:class:`drivers.pcsc.PcscReader`, or
    a test's twin): which readers hold a card, without waiting; then close."""

    async def card_states(self) -> dict[str, bool]: ...

    async def aclose(self) -> None: ...


def _open_pcsc_states() -> CardStates:
    from drivers.pcsc import PcscReader

    return PcscReader()


class PcscReaderProbe:
    """:class:`ReaderProbe` over pcscd: one short-lived PC/SC context per probe (a probe a
    second costs one socket round trip, and nothing stays open between probes)."""

    def __init__(self, reader_factory: Callable[[], CardStates] | None = None) -> None:
        self._reader_factory = reader_factory or _open_pcsc_states

    async def probe(self) -> list[ReaderStatus]:
        reader = self._reader_factory()
        try:
            states = await reader.card_states()
        except ReaderError as exc:
            from drivers.pcsc import NO_PCSCD_MESSAGE
            from drivers.reader_errors import PcscServiceError

            why = NO_PCSCD_MESSAGE if isinstance(exc, PcscServiceError) else str(exc)
            return [ReaderStatus(ReaderState.NO_READER, None, why)]
        finally:
            await reader.aclose()
        if not states:
            return [ReaderStatus(ReaderState.NO_READER, None,
                                 "pcscd runs but no card reader is attached: plug one in")]
        return [ReaderStatus(ReaderState.CARD_IN if present else ReaderState.WAITING, name)
                for name, present in sorted(states.items())]


class InjectedReaderProbe:
    """:class:`ReaderProbe` for an injected reader that cannot say whether a card is in (a
    simulated one): its readers are shown waiting."""

    def __init__(self, reader: CardReader) -> None:
        self._reader = reader

    async def probe(self) -> list[ReaderStatus]:
        try:
            names = await self._reader.list_readers()
        except ReaderError as exc:
            return [ReaderStatus(ReaderState.NO_READER, None, str(exc))]
        if not names:
            return [ReaderStatus(ReaderState.NO_READER, None, "no reader")]
        return [ReaderStatus(ReaderState.WAITING, name) for name in names]


def reader_probe_for(reader: CardReader | None) -> ReaderProbe:
    """The probe for the terminal's reader: pcscd's when none was injected; the injected
    reader itself when it can tell (the demo's card shelf); else its reader list."""
    if reader is None:
        return PcscReaderProbe()
    if isinstance(reader, ReaderProbe):
        return reader
    return InjectedReaderProbe(reader)
