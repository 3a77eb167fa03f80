"""The services keep each PSP's circuit breaker for the life of the process, across the
routers they open and close, and report its state with the time left before a retry."""

from __future__ import annotations

import uuid
from pathlib import Path

from edge_sync.connectors import BreakerSettings, Router, RouteRule
from edge_sync.connectors.base import Operation
from edge_sync.connectors.errors import PspTimeoutError
from edge_sync.connectors.fake import ScriptedConnector
from terminal.emv.kernel import OnlineRequest
from terminal.money import Amount
from terminal.profile import Profile, load_profile
from terminal.services import TerminalServices
from terminal.store import Store


async def _no_sleep(_seconds: float) -> None:
    return None


def unanswering_router(_profile: Profile, _store: Store) -> Router:
    """A router whose one acquirer never answers; one failure opens its breaker."""
    connector = ScriptedConnector("cih", {
        Operation.AUTHORISE: [PspTimeoutError("no answer")],
        Operation.REVERSE: [PspTimeoutError("no answer") for _ in range(5)]})
    return Router([RouteRule(name="all", connectors=("cih",))], {"cih": connector}, {},
                  breakers={"cih": BreakerSettings(1, 30.0, 15.0)}, sleep=_no_sleep)


REQUEST = OnlineRequest(
    aid=bytes.fromhex("A0000000031010"), pan_masked="476173******0010",
    icc_data={0x5A: bytes.fromhex("4761739001010010"), 0x5F24: bytes.fromhex("301231"),
              0x9F26: bytes(8)})


async def trip_cih(services: TerminalServices) -> None:
    """One authorisation the acquirer leaves unanswered, through the services' router."""
    authoriser = services.online_authoriser(
        Amount(2500, services.profile.default_currency), transaction_id=uuid.UUID(int=9))
    assert await authoriser.authorise(REQUEST) is None


async def test_every_psp_starts_closed(default_profile_dir: Path, data_dir: Path) -> None:
    """Before any call, every PSP of the profile is listed, its breaker closed."""
    profile = load_profile(default_profile_dir)
    with TerminalServices(profile, data_dir, router_factory=unanswering_router) as services:
        states = services.breaker_states()
    assert [b.name for b in states] == [p.name for p in profile.psps]
    assert {b.state for b in states} == {"closed"}
    assert {b.retry_in_s for b in states} == {None}


async def test_an_open_breaker_survives_the_router_and_says_when_it_retries(
        default_profile_dir: Path, data_dir: Path) -> None:
    """The acquirer fails once (threshold 1): its breaker is open, with the seconds left
    before the probe; closing the router (end of a payment) and opening the next keeps it."""
    profile = load_profile(default_profile_dir)
    with TerminalServices(profile, data_dir, router_factory=unanswering_router) as services:
        await trip_cih(services)
        await services.aclose()  # the payment block ends: its router is closed
        services.router()  # the next payment's router
        states = {b.name: b for b in services.breaker_states()}
        outbox_router = services.new_router()
    assert states["cih"].state == "open"
    assert states["cih"].retry_in_s is not None and 0 < states["cih"].retry_in_s <= 15.0
    assert states["bmce"].state == "closed"
    assert outbox_router.breakers["cih"].state.value == "open"
