"""The services layer: persistent STANs, reversals that are queued and never dropped."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from edge_sync.connectors import Iso8583Connector, Router, RouteRule
from edge_sync.connectors.base import Operation
from edge_sync.connectors.errors import PspTimeoutError, ReversalPendingError
from edge_sync.connectors.fake import ScriptedConnector
from terminal.emv.kernel import OnlineRequest
from terminal.money import Amount
from terminal.profile import load_profile
from terminal.services import TerminalServices, network_for_aid
from terminal.services.fake import SoftwareSigningKeys
from terminal.store import Store

REVERSAL = {"connector": "cih", "original": {"connector": "cih", "transaction_id": "t"},
            "amount": {"minor": 2500, "currency": "MAD", "numeric": 504, "exponent": 2}}


def _iso_connectors(router: Router) -> list[Iso8583Connector]:
    return [c for c in router.connectors.values() if isinstance(c, Iso8583Connector)]


def test_stans_continue_across_services_instances(default_profile_dir: Path,
                                                  data_dir: Path) -> None:
    """Two processes' worth of services on one data dir never hand out the same STAN."""
    profile = load_profile(default_profile_dir)
    seen: list[str] = []
    for _ in range(2):
        with TerminalServices(profile, data_dir) as services:
            connectors = _iso_connectors(services.router())
            assert connectors, "the default profile has ISO 8583 acquirers"
            seen += [connectors[0].stans.next_stan() for _ in range(3)]
    assert len(set(seen)) == len(seen) == 6


def test_pending_reversal_is_queued_with_priority(default_profile_dir: Path,
                                                  data_dir: Path) -> None:
    """A reversal the PSP left unconfirmed becomes an outbox row for its connector, first in
    line, journalled in the same transaction."""
    profile = load_profile(default_profile_dir)
    tx = uuid.uuid4()
    with TerminalServices(profile, data_dir) as services:
        services.queue_reversal(tx, ReversalPendingError("no answer", reversal=REVERSAL))
        row = services.store.connection.execute(
            "SELECT destination, kind, priority, idempotency_key, payload FROM outbox").fetchone()
        journal = services.store.connection.execute(
            "SELECT action, entity_id FROM audit_journal ORDER BY id DESC").fetchone()
    assert tuple(row)[:4] == ("psp:cih", "reversal", 10, f"reversal:{tx}")
    assert json.loads(row[4]) == REVERSAL
    assert tuple(journal) == ("reversal_queued", str(tx))


def _router_that_loses_the_answer() -> Router:
    """One scripted acquirer: the authorisation and every reversal try go unanswered."""
    timeouts = [PspTimeoutError("no answer") for _ in range(5)]
    connector = ScriptedConnector("cih", {Operation.AUTHORISE: [PspTimeoutError("no answer")],
                                          Operation.REVERSE: timeouts})
    return Router([RouteRule(name="all", connectors=("cih",))], {"cih": connector}, {},
                  sleep=_no_sleep)


async def _no_sleep(_seconds: float) -> None:
    return None


async def test_online_authoriser_queues_the_reversal(default_profile_dir: Path,
                                                     data_dir: Path) -> None:
    """The kernel's authoriser hands a ReversalPendingError to the outbox instead of logging it:
    the kernel hears "unable to go online" and the reversal waits for the worker."""
    profile = load_profile(default_profile_dir)
    request = OnlineRequest(
        aid=bytes.fromhex("A0000000031010"), pan_masked="476173******0010",
        icc_data={0x5A: bytes.fromhex("4761739001010010"), 0x5F24: bytes.fromhex("301231"),
                  0x9F26: bytes(8)},
    )
    with TerminalServices(profile, data_dir) as services:
        authoriser = services.online_authoriser(Amount(2500, profile.default_currency),
                                                _router_that_loses_the_answer(),
                                                transaction_id=uuid.UUID(int=7))
        answer = await authoriser.authorise(request)
        row = services.store.connection.execute(
            "SELECT destination, kind, idempotency_key FROM outbox").fetchone()
    assert answer is None
    assert tuple(row) == ("psp:cih", "reversal", f"reversal:{uuid.UUID(int=7)}")


@pytest.mark.parametrize(
    ("aid",              "network"),
    [
        ("A0000000031010", "visa"),
        ("A0000000041010", "mastercard"),
    ],
)
def test_network_for_aid(default_profile_dir: Path, aid: str, network: str) -> None:
    """The AID → network lookup gives the profile's network for each application."""
    assert network_for_aid(load_profile(default_profile_dir), bytes.fromhex(aid)) == network


def test_signing_keys_rotate_and_keep_old_versions() -> None:
    """The in-memory signing keys rotate like the token: new current, old still signing."""
    keys = SoftwareSigningKeys()
    first = keys.public_key_pem()
    assert keys.rotate_signing() == 2 and keys.signing_key_version == 2
    assert keys.public_key_pem(1) == first != keys.public_key_pem()
    assert keys.signer().for_version(1).sign(b"x")
    with pytest.raises(ValueError, match="version 3"):
        keys.for_version(3)


def test_store_is_opened_lazily(default_profile_dir: Path, tmp_path: Path) -> None:
    """Building the services touches nothing on disk until a use case needs the store."""
    data_dir = tmp_path / "empty"  # the data_dir fixture holds a store already
    data_dir.mkdir()
    with TerminalServices(load_profile(default_profile_dir), data_dir) as services:
        assert not services.database_path.exists()
        assert isinstance(services.store, Store)
        assert services.database_path.exists()


def test_router_pins_the_psp_keys_in_the_data_dir(default_profile_dir: Path, data_dir: Path,
                                                  tmp_path: Path) -> None:
    """The services' router pins each PSP's P2PE key on first use in the data dir; a profile
    whose key was swapped afterwards (a pushed config, a stolen terminal) is refused."""
    import shutil

    from terminal.errors import ConfigError

    with TerminalServices(load_profile(default_profile_dir), data_dir) as services:
        services.router()
    assert (data_dir / "p2pe-pins.toml").is_file()
    swapped = tmp_path / "swapped"
    shutil.copytree(default_profile_dir, swapped)
    (swapped / "p2pe" / "iso8583-test.pem").write_bytes(
        (swapped / "p2pe" / "stripe-test.pem").read_bytes())
    with TerminalServices(load_profile(swapped), data_dir) as services, \
            pytest.raises(ConfigError, match=r"(?i)p2pe|pin"):
        services.router()
