"""The profile → connectors and router hand-over, and the durable STAN source."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_sync.connectors import (
    Iso8583Connector,
    PayPalConnector,
    Router,
    RoutingKey,
    StripeConnector,
)
from edge_sync.connectors.base import Operation, Outcome, PspReference, PspResponse
from terminal.emv import tlv
from terminal.profile import load_profile
from terminal.psp_routing import build_router, kernel_answer
from terminal.store import Store
from terminal.store.psp_trace import SqliteStanSource


@pytest.fixture
def router(default_profile_dir: Path) -> Router:
    return build_router(load_profile(default_profile_dir))


def test_every_psp_gets_its_connector_and_breaker(router: Router) -> None:
    """Each [[psp]] becomes a connector of its kind with the profile's breaker settings."""
    kinds = {name: type(c) for name, c in router.connectors.items()}
    assert kinds == {"cih": Iso8583Connector, "attijariwafa": Iso8583Connector,
                     "bmce": Iso8583Connector, "stripe": StripeConnector,
                     "paypal": PayPalConnector}
    assert router.breakers["cih"].settings.failures == 5
    bmce = router.connectors["bmce"]
    assert isinstance(bmce, Iso8583Connector)
    assert bmce.settings.context.acquirer_id == "504003"


@pytest.mark.parametrize(
    ("network",   "currency", "connectors"),
    [
        ("domestic",  "MAD",      ["cih", "bmce"]),
        ("visa",      "MAD",      ["attijariwafa", "cih"]),
        ("cb",        "MAD",      ["attijariwafa"]),
        ("visa",      "EUR",      ["stripe", "paypal", "attijariwafa"]),
        ("cb",        "EUR",      ["stripe", "attijariwafa"]),
    ],
)
def test_default_routes(router: Router, network: str, currency: str,
                        connectors: list[str]) -> None:
    """The default profile's routes and PSP scopes give these connectors, in order."""
    key = RoutingKey(network=network, currency=currency, amount_minor=2500)
    assert router.candidates(key) == connectors


def test_stans_survive_a_restart(tmp_path: Path) -> None:
    """A reopened store never hands out a STAN again; each connector counts on its own."""
    with Store.open(tmp_path / "etika.db") as store:
        first = SqliteStanSource(store, "cih", block=10)
        seen = [first.next_stan() for _ in range(3)]
        other = SqliteStanSource(store, "bmce", block=10)
        assert other.next_stan() == "000001"
    with Store.open(tmp_path / "etika.db") as store:
        again = SqliteStanSource(store, "cih", block=10)
        assert seen == ["000001", "000002", "000003"]
        assert again.next_stan() == "000011"  # the crashed block is skipped, not reused


def test_router_takes_durable_stans_per_connector(tmp_path: Path,
                                                  default_profile_dir: Path) -> None:
    """Each ISO 8583 connector gets its own STAN source from the factory."""
    with Store.open(tmp_path / "etika.db") as store:
        router = build_router(load_profile(default_profile_dir),
                              stan_source=lambda name: SqliteStanSource(store, name))
        cih = router.connectors["cih"]
        assert isinstance(cih, Iso8583Connector)
        assert cih.stans.next_stan() == "000001"
        names = [r[0] for r in store.connection.execute("SELECT connector FROM psp_trace")]
        assert names == ["cih"]


@pytest.mark.parametrize(
    ("outcome",          "code",       "emv_data",                     "flagged", "arc",  "iad"),
    [
        (Outcome.APPROVE,  "00",         bytes.fromhex("9108") + bytes(8), False,   b"00",  bytes(8)),
        (Outcome.APPROVE,  "succeeded",  b"",                            False,     b"00",  None),
        (Outcome.DECLINE,  "00",         b"",                            False,     b"05",  None),
        (Outcome.DECLINE,  "51",         b"",                            False,     b"51",  None),
        (Outcome.APPROVE,  "05",         b"",                            False,     b"00",  None),
        (Outcome.APPROVE,  "00",         bytes.fromhex("91"),            False,     b"00",  None),
        (Outcome.APPROVE,  "00",         b"",                            True,      b"00",  None),
    ],
)
def test_kernel_answer_keeps_the_decision(outcome: Outcome, code: str, emv_data: bytes,
                                          flagged: bool, arc: bytes, iad: bytes | None) -> None:
    """The ARC agrees with the PSP's outcome (a decline never carries an approving ARC) and
    unreadable issuer data is an issuer authentication failure, not a lost answer (#17
    items 6-7, EMV Book 3 §10.9)."""
    answer = kernel_answer(PspResponse(
        outcome=outcome, code=code, message="", operation=Operation.AUTHORISE,
        reference=PspReference(connector="x", transaction_id="t", approval_code="A1B2C3"),
        emv_data=emv_data, issuer_data_malformed=flagged))
    assert (answer.arc, answer.issuer_authentication_data) == (arc, iad)
    assert answer.issuer_data_malformed is (flagged or emv_data == bytes.fromhex("91"))
    assert answer.authorisation_code == b"A1B2C3"


def test_kernel_answer_hands_the_issuer_scripts_to_the_card() -> None:
    """Issuer scripts in the host's DE 55 (templates 71 and 72, Book 3 §10.10) reach the
    kernel as sent, without the other objects; before, they were dropped and never run."""
    put_data = bytes.fromhex("84DA9F580100")  # a script command: PUT DATA (secure messaging)
    script71 = tlv.encode(0x71, tlv.encode(0x9F18, bytes.fromhex("00000001"))
                          + tlv.encode(0x86, put_data))
    script72 = tlv.encode(0x72, tlv.encode(0x9F18, bytes.fromhex("00000002"))
                          + tlv.encode(0x86, put_data))
    emv = tlv.encode(0x91, bytes(8)) + script71 + tlv.encode(0x8A, b"00") + script72
    answer = kernel_answer(PspResponse(
        outcome=Outcome.APPROVE, code="00", message="", operation=Operation.AUTHORISE,
        reference=PspReference(connector="x", transaction_id="t"), emv_data=emv))
    assert answer.scripts == script71 + script72
    assert answer.issuer_authentication_data == bytes(8)
