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
    """Serve ``card`` on vpcd at ``host:port`` until SIGINT/SIGTERM; returns 0."""
    vpcd = VpcdCard(card, host, port)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        runner = asyncio.create_task(vpcd.run(), name="vpcd-card")
        reader = f"Virtual PCD 00 0{port - 35963}" if port in (35963, 35964) else "vpcd"
        print(
            f"card {card.profile.name} ({card.interface.value}) for {reader} at {host}:{port}; "
            "Ctrl-C removes it",
            flush=True,
        )
        waiter = asyncio.create_task(vpcd.connected.wait())
        done, _ = await asyncio.wait({waiter, asyncio.create_task(stop.wait())}, timeout=2,
                                     return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done and not stop.is_set():
            print(f"waiting for vpcd on {host}:{port} (is pcscd running?)", file=sys.stderr,
                  flush=True)
        await stop.wait()
        vpcd.stop()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner

    asyncio.run(main())
    return 0
