"""The card simulator in-process: a :class:`~drivers.base.CardReader` holding an :class:`EmvCard`.

For unit tests and for a demo without pcscd. It is the driver's scripted reader whose
answers come from a simulated card instead of a script, so it shares the T=0 handling
and the insert/remove/unplug behaviour the driver's tests pin down::

    from simulators.card import in_process_reader
    reader = in_process_reader("visa-credit")                 # contact, card inserted
    session = await reader.connect(await reader.wait_for_card())
"""

from __future__ import annotations

from drivers.base import ResponseApdu
from drivers.scripted import ScriptedReader, ScriptedSession
from simulators.card.card import EmvCard
from simulators.card.profiles import Interface, get_profile

__all__ = ["SimulatedCardReader", "in_process_reader"]


class SimulatedCardReader(ScriptedReader):
    """A reader whose card is a simulated EMV card; ``sent`` records every command."""

    def __init__(self, card: EmvCard | None = None, *, name: str = "Etika Simulated PCD 00 00"):
        super().__init__(atr=card.atr if card else b"", name=name, card_present=card is not None)
        self.card = card

    def respond(self, command: bytes) -> ResponseApdu:
        if self.card is None:  # pragma: no cover - sessions die with the card
            raise RuntimeError("no card")
        response = self.card.process(command)
        return ResponseApdu(response[:-2], response[-2], response[-1])

    async def connect(self, reader: str) -> ScriptedSession:
        session = await super().connect(reader)
        assert self.card is not None  # connect() refused an empty reader already
        self.card.power_on()
        return session

    def session_closed(self) -> None:
        super().session_closed()
        if self.card is not None:
            self.card.power_off()

    def insert_card(self, card: EmvCard) -> None:
        """Put ``card`` in the reader (replacing any card there)."""
        self.card = card
        self.insert(card.atr)

    def remove_card(self) -> None:
        """Take the card out; open sessions fail with ``CardRemovedError``."""
        if self.card is not None:
            self.card.power_off()
        self.remove()


def in_process_reader(
    profile: str = "visa-credit",
    interface: Interface | str = Interface.CONTACT,
    faults: tuple[str, ...] = (),
    *,
    name: str = "Etika Simulated PCD 00 00",
) -> SimulatedCardReader:
    """A reader with the card ``profile`` inserted (see ``simulators.card.profiles``)."""
    card_profile = get_profile(profile)
    if faults:
        card_profile = card_profile.with_faults(*faults)
    return SimulatedCardReader(EmvCard(card_profile, Interface(interface)), name=name)
