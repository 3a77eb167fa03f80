"""ISO 8583 MAC (DE 64/128, AES-CMAC): requests are authenticated, answers verified, and an
answer altered on the way is an unknown outcome that is reversed (issue #12 item 6)."""

from __future__ import annotations

import pytest

from edge_sync.connectors import (
    BreakerSettings,
    Iso8583Connector,
    Iso8583Settings,
    Outcome,
    Router,
    RouteRule,
    RoutingKey,
)
from edge_sync.connectors.errors import (
    ConnectorsExhaustedError,
    MalformedResponseError,
    ReversalPendingError,
)
from edge_sync.connectors.iso8583_mac import MAC_HEX_LENGTH, SoftwareCmac
from simulators.psp.acquirer import Acquirer
from simulators.psp.faults import parse_faults
from simulators.psp.iso_host import Iso8583Host
from simulators.psp.keys import private_key_path, public_key_path
from tests.fixtures.psp import MAD, VISA_PAN, authorisation, host_context

pytestmark = [pytest.mark.network, pytest.mark.filterwarnings("ignore:.*TripleDES")]

KEY = bytes(range(16))
BALANCE = 10_000_000  # the simulated Visa test account before any payment
KEY_ROUTE = RoutingKey(network="visa", currency="MAD", amount_minor=MAD.minor)


async def _no_sleep(_: float) -> None:
    return None


def _connector(port: int, mac: SoftwareCmac | None) -> Iso8583Connector:
    return Iso8583Connector(Iso8583Settings(
        host_context(), "127.0.0.1", port, public_key_path("iso8583").read_bytes(),
        timeout_s=2, mac=mac))


def _router(connector: Iso8583Connector) -> Router:
    return Router([RouteRule("all", (connector.name,))], {connector.name: connector}, {},
                  breakers={connector.name: BreakerSettings(failures=100, reset_s=60)},
                  sleep=_no_sleep)


async def test_requests_carry_a_mac_the_host_verifies() -> None:
    """With the shared key the sale is approved and every request carried DE 64/128."""
    acquirer = Acquirer(private_key_path("iso8583").read_bytes())
    async with Iso8583Host(acquirer, mac=SoftwareCmac(KEY)) as host:
        connector = _connector(host.port, SoftwareCmac(KEY))
        try:
            assert (await connector.authorise(authorisation())).approved
            assert (await connector.echo()).approved
        finally:
            await connector.aclose()
    assert host.received
    assert all(len(r.get("64", r.get("128", ""))) == MAC_HEX_LENGTH for r in host.received)


async def test_a_wrong_key_is_refused_and_nothing_is_posted() -> None:
    """A request MAC-ed with another key is refused by the host (63, security violation,
    nothing processed), and its answer does not verify for that terminal either."""
    acquirer = Acquirer(private_key_path("iso8583").read_bytes())
    async with Iso8583Host(acquirer, mac=SoftwareCmac(KEY)) as host:
        connector = _connector(host.port, SoftwareCmac(bytes(16)))
        try:
            with pytest.raises(MalformedResponseError, match="MAC"):
                await connector.authorise(authorisation())
        finally:
            await connector.aclose()
        genuine = _connector(host.port, SoftwareCmac(KEY))
        try:
            assert (await genuine.echo()).outcome is Outcome.APPROVE
        finally:
            await genuine.aclose()
    assert acquirer.account(VISA_PAN).balance == BALANCE


async def test_an_unauthenticated_host_is_refused() -> None:
    """A host that sends no MAC (a plaintext impostor) gives no answer the terminal trusts:
    the authorisation's outcome is unknown and its reversal is handed back to queue."""
    acquirer = Acquirer(private_key_path("iso8583").read_bytes())
    async with Iso8583Host(acquirer) as host:
        router = _router(_connector(host.port, SoftwareCmac(KEY)))
        try:
            with pytest.raises(ReversalPendingError, match="no MAC") as info:
                await router.authorise(authorisation(), KEY_ROUTE)
        finally:
            await router.aclose()
    assert info.value.reversal["connector"] == "cih"


async def test_an_altered_answer_is_reversed() -> None:
    """An approval whose MAC does not verify is an unknown outcome: the router reverses the
    authorisation (the reversal's own answer verifies) and the card is not charged."""
    acquirer = Acquirer(private_key_path("iso8583").read_bytes())
    async with Iso8583Host(acquirer, parse_faults("bad-mac=1"), mac=SoftwareCmac(KEY)) as host:
        router = _router(_connector(host.port, SoftwareCmac(KEY)))
        try:
            with pytest.raises(ConnectorsExhaustedError) as info:
                await router.authorise(authorisation(), KEY_ROUTE)
        finally:
            await router.aclose()
    assert info.value.fields["attempts"][0]["reason"] == "AuthorisationReversedError"
    assert "MAC" in info.value.fields["attempts"][0]["detail"]
    assert acquirer.account(VISA_PAN).balance == BALANCE
