"""The in-process simulated card reader, as the terminal finds it: the ``simulated`` entry
of the ``etika.card_readers`` entry-point group (``simulators/pyproject.toml``).

``etika card read|transact --simulated PROFILE`` asks that group for a reader instead of
importing the simulators: the terminal installs and runs without them. The reader it gets
is a :class:`~drivers.base.CardReader` with the card inserted, plus
:meth:`SimulatedReaderWithIssuer.online_authoriser`, the card's test issuer
(``--issuer simulated``).
"""

from __future__ import annotations

import warnings

from simulators.card.card import EmvCard
from simulators.card.profiles import PROFILES
from simulators.card.reader import SimulatedCardReader, in_process_reader
from simulators.card.sim_issuer import SimulatedIssuer

__all__ = ["SimulatedReaderWithIssuer", "open_simulated_reader"]


class SimulatedReaderWithIssuer(SimulatedCardReader):
    """A simulated reader whose card's issuer can answer the card's ARQCs."""

    def online_authoriser(self) -> SimulatedIssuer:
        """The test issuer of the card in the reader (verifies ARQCs, returns ARPCs)."""
        if self.card is None:
            raise ValueError("no simulated card in the reader")
        return SimulatedIssuer(self.card.profile)


def open_simulated_reader(profile: str, interface: str) -> SimulatedReaderWithIssuer:
    """A reader holding the simulated card ``profile`` on ``interface`` (``contact`` or
    ``contactless``). An unknown profile or an interface the card lacks is a ``ValueError``
    whose message names the choices."""
    # pyemv (the simulator's cryptography) uses TDES through a deprecated import path.
    warnings.filterwarnings("ignore", message=".*TripleDES.*")
    if profile not in PROFILES:
        raise ValueError(f"unknown card profile {profile!r}; known: {', '.join(PROFILES)}")
    base = in_process_reader(profile, interface)
    card: EmvCard | None = base.card
    if card is None:  # pragma: no cover - in_process_reader always inserts the card
        raise ValueError(f"no card for profile {profile!r}")
    return SimulatedReaderWithIssuer(card, name=base.name)

