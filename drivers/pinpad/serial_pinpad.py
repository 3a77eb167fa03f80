"""The serial PIN pad driver: async over pyserial, protocol of ``drivers/PROTOCOL.md``.

The port is opened non-blocking and watched with the event loop's ``add_reader``, so no
thread is needed; bytes go through :class:`~drivers.pinpad.frame.FrameDecoder`. One
exchange runs at a time (a lock); :meth:`SerialPinPad.cancel` during ``get_pin`` is
signalled to the running exchange, which sends ``72`` itself.

Every pyserial or OS error is mapped to a :class:`~drivers.errors.PinPadError` leaf by
:func:`map_serial_error`. The PAN goes to the pad inside the ``Z62`` packet and nowhere
else: the log records command codes and KSNs only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import serial

from drivers.base import EncryptedPin
from drivers.errors import (
    PinEntryCancelledError,
    PinEntryTimeoutError,
    PinPadDeviceError,
    PinPadDisconnectedError,
    PinPadError,
    PinPadFrameError,
    PinPadNoAnswerError,
    PinPadPortError,
)
from drivers.pinpad.frame import ACK, NAK, BadFrame, Control, Frame, FrameDecoder, encode_frame
from drivers.pinpad.messages import (
    MAX_PART,
    BlockPartRequest,
    BlockPartResponse,
    CancelRequest,
    DisplayRequest,
    IccKeyPartRequest,
    LoadKeyRequest,
    LoadKeyResponse,
    OfflinePinRequest,
    OfflinePinResponse,
    PinEntryRequest,
    PinEntryResponse,
    PinResult,
    Request,
    Response,
    StatusRequest,
    StatusResponse,
    decode_response,
)

__all__ = ["SerialPinPad", "map_serial_error"]

log = logging.getLogger(__name__)


class _LineDown:
    """Queued when the port fails under the reader; carries the mapped error."""

    def __init__(self, error: PinPadError) -> None:
        self.error = error


def map_serial_error(exc: BaseException, port: str, *, opening: bool = False) -> PinPadError:
    """The project's error for a pyserial/OS exception on ``port`` (raise it ``from exc``)."""
    if opening:
        return PinPadPortError(
            f"cannot open PIN pad port {port}: {exc}; check the device path, cable and "
            "permissions (is the user in the dialout group?)",
            port=port,
        )
    if isinstance(exc, serial.SerialTimeoutException):
        return PinPadNoAnswerError(
            f"PIN pad on {port} did not accept data in time; check the cable and flow control",
            port=port,
        )
    if isinstance(exc, serial.PortNotOpenError):
        return PinPadDisconnectedError(
            f"PIN pad port {port} is not open; open the pad before using it", port=port
        )
    if isinstance(exc, serial.SerialException | OSError):
        return PinPadDisconnectedError(
            f"PIN pad on {port} went away ({exc}); check it is plugged in, then retry",
            port=port,
        )
    raise TypeError(f"not a serial error: {type(exc).__name__}")


class SerialPinPad:
    """A PIN pad on a serial port; implements :class:`drivers.base.PinPad`.

    ``ack_timeout`` is how long to wait for ACK before retransmitting (``tries`` sends in
    all); the pad's answer to a PIN entry may take ``timeout_s`` plus ``answer_grace``.
    """

    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        *,
        ack_timeout: float = 1.0,
        tries: int = 3,
        answer_grace: float = 5.0,
        serial_factory: Callable[..., serial.Serial] = serial.Serial,
    ) -> None:
        if tries < 1:
            raise ValueError("tries must be at least 1")
        self.port = port
        self.baudrate = baudrate
        self.ack_timeout = ack_timeout
        self.tries = tries
        self.answer_grace = answer_grace
        self._serial_factory = serial_factory
        self._serial: serial.Serial | None = None
        self._decoder = FrameDecoder()
        self._events: asyncio.Queue[Control | Frame | BadFrame | _LineDown] = asyncio.Queue()
        self._stash: deque[Frame] = deque()
        self._lock = asyncio.Lock()
        self._cancel_requested: asyncio.Event | None = None
        self._down: PinPadError | None = None

    @property
    def noise_bytes(self) -> int:
        """Bytes received outside packets and ignored (line noise), for diagnostics."""
        return self._decoder.noise_bytes

    # --- lifetime -----------------------------------------------------------------------

    async def __aenter__(self) -> SerialPinPad:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the port (8N1, non-blocking) and start watching it."""
        if self._serial is not None:
            raise RuntimeError("the PIN pad is already open")
        try:
            port = self._serial_factory(
                self.port, baudrate=self.baudrate, timeout=0, write_timeout=self.ack_timeout
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise map_serial_error(exc, self.port, opening=True) from exc
        self._serial = port
        self._down = None
        self._decoder.reset()
        self._events = asyncio.Queue()
        self._stash.clear()
        asyncio.get_running_loop().add_reader(port.fileno(), self._on_readable)
        log.info("pinpad opened", extra={"port": self.port, "baudrate": self.baudrate})

    async def close(self) -> None:
        if self._serial is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._serial.fileno())
        with contextlib.suppress(Exception):
            self._serial.close()
        self._serial = None
        log.info("pinpad closed", extra={"port": self.port})

    # --- the PinPad protocol ------------------------------------------------------------

    async def get_pin(
        self, pan: str, amount_minor: int, currency_numeric: int, timeout_s: float = 30.0
    ) -> EncryptedPin:
        """Run a DUKPT PIN entry; see :class:`drivers.base.PinPad`."""
        request = PinEntryRequest(
            pan=pan,
            amount_minor=amount_minor,
            currency_numeric=currency_numeric,
            timeout_s=max(1, min(300, round(timeout_s))),
        )
        async with self._lock:
            self._cancel_requested = asyncio.Event()
            try:
                answer = await self._pin_exchange(request, timeout_s)
            except asyncio.CancelledError:
                self._abort_quietly()
                raise
            finally:
                self._cancel_requested = None
        assert isinstance(answer, PinEntryResponse)
        return self._pin_result(answer)

    async def encipher_pin_for_card(
        self,
        modulus: bytes,
        exponent: bytes,
        challenge: bytes,
        amount_minor: int,
        currency_numeric: int,
        timeout_s: float = 30.0,
    ) -> bytes:
        """Offline enciphered PIN (``Z63`` key parts, ``Z64``, ``Z66`` block parts).

        See :class:`drivers.base.OfflinePinPad`; errors as for :meth:`get_pin`.
        """
        if not 64 <= len(modulus) <= 3 * MAX_PART:
            raise ValueError("the ICC key modulus is 64 to 248 bytes (EMV 4.4 Book 2 Annex A2)")
        request = OfflinePinRequest(
            exponent=exponent,
            challenge=challenge,
            amount_minor=amount_minor,
            currency_numeric=currency_numeric,
            timeout_s=max(1, min(300, round(timeout_s))),
        )
        chunks = [modulus[i : i + MAX_PART] for i in range(0, len(modulus), MAX_PART)]
        async with self._lock:
            for number, chunk in enumerate(chunks, 1):
                await self._exchange(IccKeyPartRequest(number, len(chunks), chunk))
            self._cancel_requested = asyncio.Event()
            try:
                answer = await self._pin_exchange(request, timeout_s, OfflinePinResponse)
            except asyncio.CancelledError:
                self._abort_quietly()
                raise
            finally:
                self._cancel_requested = None
            assert isinstance(answer, OfflinePinResponse)
            if answer.result is not PinResult.OK:
                raise self._pin_failure(answer.result)
            block = b""
            for number in range(1, answer.parts + 1):
                part = await self._exchange(BlockPartRequest(number), BlockPartResponse)
                assert isinstance(part, BlockPartResponse)
                if part.part != number:
                    raise PinPadFrameError(
                        f"PIN pad on {self.port} sent block part {part.part}, not {number}",
                        port=self.port,
                    )
                block += part.data
        if len(block) != len(modulus):
            raise PinPadDeviceError(
                f"PIN pad on {self.port} returned a {len(block)}-byte block for a "
                f"{len(modulus)}-byte key",
                port=self.port,
            )
        log.info("pinpad offline PIN enciphered", extra={"port": self.port})
        return block

    async def display(self, text: str) -> None:
        request = DisplayRequest(text)
        async with self._lock:
            await self._exchange(request)

    async def cancel(self) -> None:
        """Abort a running PIN entry, or tell an idle pad to drop any pending one."""
        if self._cancel_requested is not None:
            self._cancel_requested.set()
            return
        async with self._lock:
            await self._exchange(CancelRequest())

    async def ping(self) -> dict[str, str]:
        async with self._lock:
            answer = await self._exchange(StatusRequest(), StatusResponse)
        assert isinstance(answer, StatusResponse)
        return dict(answer.fields)

    async def load_test_key(self, initial_key: bytes, ksn: bytes) -> None:
        """Load a test DUKPT initial key and KSN (``90``); production pads refuse it."""
        async with self._lock:
            answer = await self._exchange(LoadKeyRequest(initial_key, ksn), LoadKeyResponse)
        assert isinstance(answer, LoadKeyResponse)
        if not answer.ok:
            raise PinPadDeviceError(
                f"PIN pad on {self.port} refused the test key; inject keys at a key-injection "
                "facility instead",
                port=self.port,
            )

    # --- exchanges ----------------------------------------------------------------------

    def _pin_result(self, answer: PinEntryResponse) -> EncryptedPin:
        result = answer.result
        if result is PinResult.OK:
            assert answer.pin_format is not None
            pin = EncryptedPin(answer.ksn, answer.pin_block, answer.pin_format)
            log.info("pinpad PIN entered", extra={"port": self.port, "ksn": answer.ksn.hex()})
            return pin
        raise self._pin_failure(result)

    def _pin_failure(self, result: PinResult) -> PinPadError:
        """The error for a PIN entry that ended without a PIN (``71``/``73`` result digit)."""
        log.info("pinpad PIN entry ended", extra={"port": self.port, "result": result.name})
        if result is PinResult.CANCELLED:
            return PinEntryCancelledError(
                f"PIN entry on {self.port} was cancelled", port=self.port, result=result.name
            )
        if result is PinResult.TIMEOUT:
            return PinEntryTimeoutError(
                f"the cardholder did not enter a PIN in time on {self.port}; ask again",
                port=self.port,
            )
        reasons = {
            PinResult.NO_KEY: "has no DUKPT key loaded; inject one",
            PinResult.KEY_EXHAUSTED: "has used up its DUKPT key; re-inject it",
            PinResult.BAD_REQUEST: "refused the PIN entry request",
        }
        return PinPadDeviceError(
            f"PIN pad on {self.port} {reasons[result]}", port=self.port, result=result.name
        )

    async def _pin_exchange(
        self,
        request: PinEntryRequest | OfflinePinRequest,
        timeout_s: float,
        expect: type[PinEntryResponse | OfflinePinResponse] = PinEntryResponse,
    ) -> PinEntryResponse | OfflinePinResponse:
        await self._send(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s + self.answer_grace
        cancel_sent = False
        while True:
            assert self._cancel_requested is not None
            if self._cancel_requested.is_set() and not cancel_sent:
                await self._send(CancelRequest())
                cancel_sent = True
                deadline = loop.time() + self.ack_timeout * self.tries + self.answer_grace
            wait_answer = asyncio.ensure_future(
                self._receive_answer(max(0.0, deadline - loop.time()))
            )
            waiters: set[asyncio.Future[Any]] = {wait_answer}
            if not cancel_sent:
                waiters.add(asyncio.ensure_future(self._cancel_requested.wait()))
            try:
                done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters - {wait_answer}:
                    waiter.cancel()
                if not wait_answer.done():
                    # asyncio.wait, not "await" under suppress(CancelledError): a cancel
                    # aimed at *our* task must propagate, not be swallowed here.
                    wait_answer.cancel()
                    await asyncio.wait({wait_answer})
                    if not wait_answer.cancelled():
                        wait_answer.exception()  # retrieved; the loop re-raises line errors
            if wait_answer in done:
                answer = wait_answer.result()
                if isinstance(answer, expect):
                    await self._await_eot()
                    return answer
                log.warning("pinpad unexpected answer", extra={"port": self.port})

    async def _exchange(
        self, request: Request, expect: type[Response] | None = None
    ) -> Response | None:
        await self._send(request)
        if expect is None:
            await self._await_eot()
            return None
        answer = await self._receive_answer(self.ack_timeout * self.tries + self.answer_grace)
        await self._await_eot()
        if not isinstance(answer, expect):
            raise PinPadFrameError(
                f"PIN pad on {self.port} answered {type(answer).__name__} to "
                f"{type(request).__name__}",
                port=self.port,
            )
        return answer

    async def _send(self, request: Request) -> None:
        """Send one packet; retransmit on NAK or silence; ``tries`` sends in all."""
        code = request.encode()[:3].decode()
        frame = encode_frame(request.encode())
        self._drain_controls()
        for attempt in range(1, self.tries + 1):
            self._write(frame)
            log.debug("pinpad sent", extra={"port": self.port, "code": code, "try": attempt})
            reply = await self._next_control(self.ack_timeout)
            if reply is Control.ACK:
                return
            log.info(
                "pinpad no ACK",
                extra={"port": self.port, "code": code, "try": attempt, "reply": str(reply)},
            )
        raise PinPadNoAnswerError(
            f"PIN pad on {self.port} did not acknowledge {code!r} after {self.tries} tries; "
            "check it is powered, connected and set to the right baud rate",
            port=self.port,
            tries=self.tries,
            command=code,
        )

    async def _receive_answer(self, timeout: float) -> Response:
        """Wait for the pad's answer packet, ACK it (NAK and wait again if corrupt)."""
        bad = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._stash:
                frame = self._stash.popleft()
            else:
                event = await self._next_event(deadline - loop.time())
                if event is None:
                    raise PinPadNoAnswerError(
                        f"PIN pad on {self.port} acknowledged but never answered; "
                        "check the pad and retry",
                        port=self.port,
                        tries=1,
                    )
                if isinstance(event, BadFrame):
                    bad += 1
                    self._write(bytes([NAK]))
                    if bad >= self.tries:
                        raise PinPadFrameError(
                            f"PIN pad on {self.port} sent {bad} corrupt packets in a row "
                            f"({event.reason}); check the cable and baud rate",
                            port=self.port,
                        )
                    continue
                if not isinstance(event, Frame):
                    continue
                frame = event
            try:
                answer = decode_response(frame.message)
            except ValueError as exc:
                bad += 1
                self._write(bytes([NAK]))
                if bad >= self.tries:
                    raise PinPadFrameError(
                        f"PIN pad on {self.port} sent an answer we cannot read: {exc}",
                        port=self.port,
                    ) from None
                continue
            self._write(bytes([ACK]))
            return answer

    async def _await_eot(self) -> None:
        """The pad ends an exchange with EOT; a missing EOT is tolerated, not fatal."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_timeout
        while (event := await self._next_event(deadline - loop.time())) is not None:
            if event is Control.EOT:
                return
            if isinstance(event, Frame):
                self._stash.append(event)
                return

    async def _next_control(self, timeout: float) -> Control | None:
        """Next ACK/NAK within ``timeout``; frames meanwhile are kept for the answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (event := await self._next_event(deadline - loop.time())) is not None:
            if isinstance(event, Frame):
                self._stash.append(event)
            elif event in (Control.ACK, Control.NAK):
                return event
        return None

    async def _next_event(self, timeout: float) -> Control | Frame | BadFrame | None:
        if self._down is not None:
            raise self._down
        # asyncio.timeout, not wait_for: on 3.11 wait_for with a zero timeout turns a
        # cancellation of the caller into TimeoutError.
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                event = await self._events.get()
        except TimeoutError:
            return None
        if isinstance(event, _LineDown):
            raise event.error
        return event

    def _drain_controls(self) -> None:
        """Forget stale bytes from an earlier exchange before starting a new one."""
        self._stash.clear()
        while not self._events.empty():
            event = self._events.get_nowait()
            if isinstance(event, _LineDown):
                self._events.put_nowait(event)
                break

    # --- bytes --------------------------------------------------------------------------

    def _port(self) -> serial.Serial:
        if self._serial is None:
            raise PinPadDisconnectedError(
                f"PIN pad port {self.port} is not open; open it first", port=self.port
            )
        return self._serial

    def _write(self, data: bytes) -> None:
        if self._down is not None:
            raise self._down
        try:
            self._port().write(data)
        except (serial.SerialException, OSError) as exc:
            raise self._line_down(exc) from exc

    def _abort_quietly(self) -> None:
        """Best effort ``72`` when the caller's task is cancelled mid-entry."""
        with contextlib.suppress(PinPadError):
            self._write(encode_frame(CancelRequest().encode()))

    def _line_down(self, exc: BaseException) -> PinPadError:
        error = map_serial_error(exc, self.port)
        if self._down is None:
            self._down = error
            log.warning("pinpad line down", extra={"port": self.port, "error": type(exc).__name__})
            if self._serial is not None:
                with contextlib.suppress(Exception):
                    asyncio.get_running_loop().remove_reader(self._serial.fileno())
        return error

    def _on_readable(self) -> None:
        port = self._serial
        if port is None or self._down is not None:
            return
        try:
            data: Any = port.read(max(1, port.in_waiting))
        except (serial.SerialException, OSError) as exc:
            self._events.put_nowait(_LineDown(self._line_down(exc)))
            return
        if not data:
            return
        for event in self._decoder.feed(bytes(data)):
            self._events.put_nowait(event)
