"""The simulated card's state and the pieces several of its commands share.

:class:`CardCore` holds the personalised applications, the current transaction and the
random source, and builds what both qVSDC's GPO and GENERATE AC produce: the issuer
application data (CVR), the application cryptogram (keys and formula of
:mod:`simulators.card.issuer`), the first-AC bookkeeping, and the ``tamper-sdad`` fault.
The commands live in their own classes on top of it, gathered by
:class:`~simulators.card.card.EmvCard`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from simulators.card import issuer
from simulators.card.card_state import AC_ARQC, AC_TC, AppState, Transaction
from simulators.card.personalise import personalise
from simulators.card.profiles import CardProfile, Interface
from simulators.card.status_words import SW_CONDITIONS, CardAnswer

__all__ = ["CardCore"]

_TERMINAL_DEFAULT_LENGTHS = {
    0x9F02: 6, 0x9F03: 6, 0x9F1A: 2, 0x95: 5, 0x5F2A: 2, 0x9A: 3, 0x9C: 1, 0x9F37: 4,
}


class CardCore:
    """One simulated card (``profile``) seen through one ``interface``: its state."""

    def __init__(
        self,
        profile: CardProfile,
        interface: Interface = Interface.CONTACT,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.profile = profile
        self.interface = interface
        self._random = random_bytes
        apps = profile.apps
        if interface is Interface.CONTACTLESS:
            apps = tuple(app for app in apps if app.contactless is not None)
            if not apps or not profile.ppse:
                raise ValueError(f"card profile {profile.name!r} has no contactless interface")
        self.apps = [
            AppState(
                personalise(app, interface, profile.faults),
                pin_tries=app.pin_try_limit,
                blocked=app.blocked,
                lcol=app.lcol,
                ucol=app.ucol,
            )
            for app in apps
        ]
        self.t0 = profile.t0 or "t0" in profile.faults
        self.powered = False
        self._tx = Transaction()
        self._pending: bytes | None = None


    def _selected(self) -> AppState:
        state = self._tx.app
        if state is None or state.blocked:
            raise CardAnswer(SW_CONDITIONS)
        return state


    def _maybe_tamper(self, signature: bytes) -> bytes:
        if "tamper-sdad" not in self.profile.faults:
            return signature
        middle = len(signature) // 2
        return signature[:middle] + bytes([signature[middle] ^ 0x01]) + signature[middle + 1 :]


    def _iad(self, state: AppState) -> bytes:
        """Issuer application data: 06 ‖ DKI ‖ CVN ‖ CVR (03 ‖ 3 bytes), Visa-like layout."""
        tx = self._tx
        cvr1 = tx.cvr1
        if tx.offline_pin_ok or tx.offline_pin_failed:
            cvr1 |= 0x04
        if tx.offline_pin_failed:
            cvr1 |= 0x02
        cvr2 = tx.cvr2 | (0x40 if state.pin_tries == 0 else 0)
        cvr3 = min(tx.scripts, 15) << 4
        return bytes([0x06, 0x01, state.personalised.app.cvn, 0x03, cvr1, cvr2, cvr3])

    def _cryptogram(self, state: AppState, values: dict[int, bytes], iad: bytes) -> bytes:
        tags = {tag: values.get(tag, bytes(n)) for tag, n in _TERMINAL_DEFAULT_LENGTHS.items()}
        tags[0x82] = state.personalised.aip
        tags[0x9F36] = state.atc.to_bytes(2, "big")
        tags[0x9F10] = iad
        return issuer.generate_ac(state.personalised.card_keys, tags)

    def _record_first_ac(self, state: AppState, ac_type: int, ac: bytes) -> None:
        self._tx.first_ac = ac_type
        if ac_type == AC_ARQC:
            self._tx.arqc = ac
        elif ac_type == AC_TC:
            state.consecutive_offline += 1
