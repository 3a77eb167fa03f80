"""The part of pyscard's ``smartcard.scard`` module that :class:`drivers.pcsc.PcscReader`
uses, as a :class:`typing.Protocol`.

pyscard ships no type hints (its ``scard`` is a SWIG module), so the reader's ``api``
parameter says here what it needs: the module itself, or a test's stand-in with the same
functions (``tests/drivers/fake_scard.py`` plays pcscd restarts and unplugged readers).
The return shapes are pyscard's: every call returns its PC/SC ``hresult`` first.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["ReaderStateIn", "ReaderStateOut", "ScardApi"]

#: ``(reader, current state)`` handed to ``SCardGetStatusChange``.
ReaderStateIn = tuple[str, int]
#: ``(reader, event state, ATR bytes)`` it hands back.
ReaderStateOut = tuple[str, int, list[int]]


class ScardApi(Protocol):
    """pyscard's ``smartcard.scard``, as far as the PC/SC reader uses it."""

    SCARD_SCOPE_USER: int
    SCARD_SHARE_EXCLUSIVE: int
    SCARD_SHARE_SHARED: int
    SCARD_PROTOCOL_T0: int
    SCARD_PROTOCOL_T1: int
    SCARD_UNPOWER_CARD: int
    SCARD_STATE_UNAWARE: int
    SCARD_STATE_IGNORE: int
    SCARD_STATE_CHANGED: int
    SCARD_STATE_UNKNOWN: int
    SCARD_STATE_PRESENT: int

    def SCardEstablishContext(self, scope: int, /) -> tuple[int, int]: ...

    def SCardReleaseContext(self, context: int, /) -> int: ...

    def SCardCancel(self, context: int, /) -> int: ...

    def SCardListReaders(self, context: int, groups: list[str], /) -> tuple[int, list[str]]: ...

    def SCardGetStatusChange(
        self, context: int, timeout_ms: int, states: list[ReaderStateIn], /,
    ) -> tuple[int, list[ReaderStateOut]]: ...

    def SCardConnect(
        self, context: int, reader: str, share: int, protocols: int, /,
    ) -> tuple[int, int, int]: ...

    def SCardStatus(self, card: int, /) -> tuple[int, str, int, int, list[int]]: ...

    def SCardTransmit(
        self, card: int, protocol: int, apdu: list[int], /) -> tuple[int, list[int]]: ...

    def SCardDisconnect(self, card: int, disposition: int, /) -> int: ...
