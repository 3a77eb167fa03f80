"""Offline enciphered PIN, terminal side (CVM ``04``/``05``; EMV 4.4 Book 3 §10.5.1, Book 2 §7).

The PIN pad enciphers the PIN for the card itself; the terminal only fetches what the pad
needs and relays the result, so the PIN is never clear outside the pad (DESIGN §5):

1. GET DATA PIN Try Counter (9F17): at zero the PIN is blocked — TVR "PIN try limit
   exceeded", the CVM fails without asking for the PIN;
2. the key: the ICC PIN Encipherment Public Key (certificate 9F2D, exponent 9F2E,
   remainder 9F2F, recovered under the issuer key with no static data in its hash,
   Book 2 §7.1) or else the ICC public key (9F46, the one ODA uses); none → CVM failed;
3. GET CHALLENGE: the card's 8-byte unpredictable number;
4. the pad (:class:`OfflinePinCallback`) takes the PIN and returns
   RSA(``7F ‖ PIN block ‖ challenge ‖ padding``): cancelled / timed out → TVR "PIN not
   entered"; any other pad failure → "PIN pad not present or not working";
5. VERIFY ``00 20 00 88`` with that block: ``9000`` verified; ``63Cx`` wrong PIN (x tries
   left; x = 0 → "PIN try limit exceeded"); ``6983``/``6984`` blocked → "PIN try limit
   exceeded"; anything else fails the CVM.

One PIN entry per transaction: a wrong PIN fails this CVM (the CVM List decides what
follows) and leaves the card's counter one lower.

**Plaintext offline PIN (``01``/``03``) stays refused**: VERIFY ``80`` needs the clear PIN on
the terminal, and reader and PIN pad are separate devices here, so it would cross the
terminal in clear. :mod:`terminal.emv.cvm` treats it as not supported.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from drivers.errors import PinEntryCancelledError, PinEntryTimeoutError
from etika_errors import EtikaError
from terminal.emv import apdu
from terminal.emv.apdu import CardChannel
from terminal.emv.errors import OdaError, TlvError
from terminal.emv.oda import RsaKey
from terminal.emv.tlv import decode, flatten
from terminal.emv.tvr import Tvr, TvrBit

__all__ = ["OfflinePinCallback", "OfflinePinRequest", "OfflinePinStep"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OfflinePinRequest:
    """What the PIN pad needs to encipher the PIN for the card (never the PIN itself)."""

    modulus: bytes
    exponent: bytes
    challenge: bytes = field(repr=False)
    amount: int
    currency_numeric: int


#: Returns the RSA-enciphered PIN data for VERIFY (``drivers.base.OfflinePinPad``) or raises:
#: ``PinEntryCancelledError``/``PinEntryTimeoutError`` when the cardholder did not enter it,
#: any other ``EtikaError`` when the pad failed.
OfflinePinCallback = Callable[[OfflinePinRequest], Awaitable[bytes]]


@dataclass(slots=True)
class OfflinePinStep:
    """One transaction's offline enciphered PIN, bound to its card channel and key source."""

    channel: CardChannel
    callback: OfflinePinCallback
    #: The PIN encipherment key (step 2); raises ``OdaError`` when there is none usable.
    key: Callable[[], RsaKey]
    amount: int
    currency_numeric: int

    async def verify(self, tvr: Tvr) -> bool:
        """Run steps 1–5; True when the card verified the PIN. Sets the TVR bits above."""
        tries = await self._pin_try_counter()
        if tries == 0:
            tvr.set(TvrBit.PIN_TRY_LIMIT_EXCEEDED)
            return False
        try:
            key = self.key()
        except OdaError as exc:
            log.info("offline PIN: no usable PIN encipherment key (%s)", exc.step)
            return False
        challenge = await self.channel.transmit(apdu.get_challenge())
        if not challenge.ok or len(challenge.data) != 8:
            log.info("offline PIN: GET CHALLENGE refused (%04X)", challenge.sw)
            return False
        try:
            block = await self.callback(
                OfflinePinRequest(key.modulus, key.exponent, challenge.data, self.amount,
                                  self.currency_numeric)
            )
        except (PinEntryCancelledError, PinEntryTimeoutError):
            tvr.set(TvrBit.PIN_NOT_ENTERED)
            return False
        except EtikaError:
            tvr.set(TvrBit.PIN_PAD_NOT_PRESENT)
            return False
        if len(block) != key.size:
            tvr.set(TvrBit.PIN_PAD_NOT_PRESENT)
            return False
        answer = await self.channel.transmit(apdu.verify_enciphered_pin(block))
        if answer.ok:
            return True
        if answer.sw1 == 0x63 and answer.sw2 & 0xF0 == 0xC0:
            if answer.sw2 & 0x0F == 0:
                tvr.set(TvrBit.PIN_TRY_LIMIT_EXCEEDED)
            return False
        if answer.sw in (0x6983, 0x6984):
            tvr.set(TvrBit.PIN_TRY_LIMIT_EXCEEDED)
        return False

    async def _pin_try_counter(self) -> int | None:
        """9F17 from GET DATA, or ``None`` when the card does not give it (optional step)."""
        response = await self.channel.transmit(apdu.get_data(0x9F17))
        if not response.ok:
            return None
        try:
            value = flatten(decode(response.data)).get(0x9F17)
        except TlvError:
            return None
        return value[0] if value is not None and len(value) == 1 else None
