"""``etika sim card``: put a simulated card on vpcd and serve it until stopped.

The card connects to vsmartcard's vpcd driver inside pcscd (``Virtual PCD 00 00`` on
port 35963, ``00 01`` on 35964); it is "inserted" while connected. If vpcd is not there
yet (pcscd not started), it keeps trying; when pcscd restarts it reconnects. SIGINT or
SIGTERM removes the card and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from simulators.card.card import EmvCard
from simulators.card.errors import CardSimulatorError
from simulators.card.profiles import FAULTS, PROFILES, CardProfile, Interface, get_profile
from simulators.card.vpcd import VpcdCard
from simulators.faults import Flag, parse_fault_spec

__all__ = ["build_card", "serve"]


def build_card(profile: str, contactless: bool = False, faults: str | None = None) -> EmvCard:
    """The card for the command's options; ``CardSimulatorError`` says what is wrong."""
    try:
        card_profile: CardProfile = get_profile(profile)
    except ValueError as exc:
        raise CardSimulatorError(str(exc), profile=profile) from None
    names = tuple(parse_fault_spec(faults, {name: Flag() for name in sorted(FAULTS)},
                                   CardSimulatorError))
    if names:
        card_profile = card_profile.with_faults(*names)
    interface = Interface.CONTACTLESS if contactless else Interface.CONTACT
    try:
        return EmvCard(card_profile, interface)
    except ValueError as exc:
        raise CardSimulatorError(str(exc), profile=profile) from None


def describe_profiles() -> str:
    return "\n".join(f"{name:18} {profile.description}" for name, profile in PROFILES.items())


def serve(card: EmvCard, host: str, port: int) -> int:
    """Serve ``card`` on vpcd at ``host:port`` until SIGINT/SIGTERM; returns 0.

    The "card ... for Virtual PCD 00 0N" line is printed once vpcd has spoken to the card
    (the reader really has it); a reader that already holds another card ends the command
    with :class:`~simulators.card.errors.VpcdPortBusyError` naming the port.
    """
    vpcd = VpcdCard(card, host, port)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        runner = asyncio.create_task(vpcd.run(), name="vpcd-card")
        stopper = asyncio.create_task(stop.wait())
        connected = asyncio.create_task(vpcd.connected.wait())
        try:
            done, _ = await asyncio.wait({runner, stopper, connected}, timeout=2,
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                print(f"waiting for vpcd on {host}:{port} (is pcscd running?)",
                      file=sys.stderr, flush=True)
                done, _ = await asyncio.wait({runner, stopper, connected},
                                             return_when=asyncio.FIRST_COMPLETED)
            if runner in done:
                runner.result()  # VpcdPortBusyError (or any failure) ends the command
                return
            if connected in done:
                reader = (f"Virtual PCD 00 0{port - 35963}" if port in (35963, 35964)
                          else "vpcd")
                print(f"card {card.profile.name} ({card.interface.value}) for {reader} at "
                      f"{host}:{port}; Ctrl-C removes it", flush=True)
                await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if runner.done():
                    runner.result()
        finally:
            vpcd.stop()
            for task in (runner, stopper, connected):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    asyncio.run(main())
    return 0
