"""A hostile PSP answer never aborts a paid sale or loses its reversal (issue #17 items 5–7).

Each test runs a whole sale through :class:`PaymentManager` — the in-process card, the
store, a software key store, the in-memory PoP back end — with the acquirer replaced by a
REST connector on ``httpx.MockTransport`` (items 5–6) or the in-package
:class:`ScriptedConnector` (item 7), and reads the store: the payment's end state and the
reversal queued in the outbox.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_sync.connectors import (
    BreakerSettings,
    Connector,
    PayPalConnector,
    RestSettings,
    Router,
    RouteRule,
    StripeConnector,
)
from edge_sync.connectors.base import Operation
from edge_sync.connectors.errors import PspTimeoutError
from edge_sync.connectors.fake import ScriptedConnector, response
from edge_sync.pop_fake import InMemoryPopBackend
from hsm.fake import SoftwareKeyStore
from simulators.card.card import EmvCard
from simulators.card.profiles import Interface, get_profile
from simulators.card.reader import SimulatedCardReader, in_process_reader
from simulators.psp.keys import public_key_path
from terminal.emv import tlv
from terminal.emv.errors import CardDataError
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.payments.manager import PaymentManager
from terminal.profile import PaymentsSettings, load_profile
from terminal.store import Store
from terminal.store.token_map import StoreTokenRegistry
from tests.terminal.payments.harness import DEFAULT_PROFILE, sale

Handler = Callable[[httpx.Request], httpx.Response]


async def _no_sleep(_: float) -> None:
    return None


@dataclass
class Shop:
    manager: PaymentManager
    store: Store

    def outbox(self, payment_id: object) -> list[tuple[str, str, dict[str, Any]]]:
        return [(r[0], r[1], json.loads(r[2])) for r in self.store.connection.execute(
            "SELECT destination, kind, payload FROM outbox WHERE ref_id = ? ORDER BY id",
            (str(payment_id),))]

    def state(self, payment_id: object) -> str:
        return str(self.store.connection.execute(
            "SELECT status FROM payments WHERE id = ?", (str(payment_id),)).fetchone()[0])


@contextlib.asynccontextmanager
async def shop(data_dir: Path, connector: Connector) -> AsyncIterator[Shop]:
    profile = load_profile(DEFAULT_PROFILE).model_copy(
        update={"payments": PaymentsSettings(deadline_ms=5000)})
    router = Router([RouteRule(name="all", connectors=(connector.name,))],
                    {connector.name: connector}, {},
                    breakers={connector.name: BreakerSettings(50, 30.0, 15.0)},
                    sleep=_no_sleep)
    store = Store.open(data_dir / "etika.db")
    manager = PaymentManager(
        profile=profile, store=store, card_keys=SoftwareKeyStore(StoreTokenRegistry(store)),
        router=router, pop=InMemoryPopBackend(),
        kernel_config=replace(kernel_config_from_profile(profile),
                              random_bytes=random.Random(7).randbytes))
    try:
        yield Shop(manager, store)
    finally:
        await router.aclose()
        store.close()


def _rest(kind: str, handler: Handler) -> Connector:
    settings = RestSettings(name=kind, url="https://psp.test",
                            p2pe_public_key=public_key_path(kind).read_bytes(), api_key="sk_test")
    transport = httpx.MockTransport(handler)
    if kind == "stripe":
        return StripeConnector(settings, transport=transport)
    return PayPalConnector(settings, transport=transport)


def _lost_then_search(search_path: str, search_answer: bytes, seen: list[str]) -> Handler:
    """Every POST times out (the charge may have happened); the search answers oddly."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == search_path:
            return httpx.Response(200, content=search_answer)
        seen.append(f"{request.method} {request.url.raw_path.decode()}")
        raise httpx.ReadTimeout("no answer", request=request)

    return handle


def _reversals(shop_: Shop, payment_id: object) -> list[dict[str, Any]]:
    return [payload for _, kind, payload in shop_.outbox(payment_id) if kind == "reversal"]


@pytest.mark.parametrize(
    ("kind",    "search_path",                 "search_answer"),
    [
        ("stripe",  "/v1/payment_intents/search",  b'{"data": [{"object": "payment_intent"}]}'),
        ("stripe",  "/v1/payment_intents/search",  b'{"data": [{"id": "pi_1/../../v1/refunds"}]}'),
        ("stripe",  "/v1/payment_intents/search",  b'{"data": [{"id": "pi_\\udfff"}]}'),
        ("stripe",  "/v1/payment_intents/search",  b'{"data": {"id": "pi_1"}}'),
        ("paypal",  "/v2/checkout/orders",         b'{"orders": [{"id": "5O190127TN364715T"}]}'),
        ("paypal",  "/v2/checkout/orders",         b'{"orders": [{"purchase_units": [{"payments":'
                                                   b' {"captures": [{"id": "C1?x=1"}]}}]}]}'),
        ("paypal",  "/v2/checkout/orders",         b'{"orders": [{"purchase_units": "none"}]}'),
    ],
    ids=["stripe-no-id", "stripe-path-id", "stripe-surrogate-id", "stripe-data-object",
         "paypal-no-units", "paypal-query-id", "paypal-units-text"],
)
async def test_odd_search_answer_cancels_and_queues_the_reversal(
        data_dir: Path, kind: str, search_path: str, search_answer: bytes) -> None:
    """#17 item 5: an unanswered authorisation whose search answer has an odd shape ends
    cancelled with the reversal queued in the outbox (the outcome stays unknown); no id
    from the answer steers a request to another path."""
    seen: list[str] = []
    async with shop(data_dir, _rest(kind, _lost_then_search(search_path, search_answer,
                                                            seen))) as s:
        out = await s.manager.sale(sale("600.00"), in_process_reader("visa-credit", "contact"))
        assert out.state == "cancelled" and not out.approved
        reversals = _reversals(s, out.payment_id)
        assert len(reversals) == 1
        assert reversals[0]["connector"] == kind
        assert reversals[0]["original"]["transaction_id"] == str(out.payment_id)
        assert reversals[0]["amount"]["minor"] == 60000
    assert all("refunds" not in line and "?" not in line for line in seen), seen


def _answer(status: int, body: bytes) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    return handle


@pytest.mark.parametrize(
    ("kind",    "status", "body",                                                  "state"),
    [
        ("stripe",  402,  b'{"error": {"decline_code": "do_not_honor",'
                          b' "message": "refus\\udfff"}}',                          "financial_declined"),
        ("stripe",  402,  b'{"error": {"decline_code": "00"}}',                     "financial_declined"),
        ("stripe",  402,  b'{"error": "card_declined"}',                            "cancelled"),
        ("stripe",  200,  b'{"id": "pi_1", "status": "succeeded", "latest_charge":'
                          b' {"payment_method_details": {"card_present":'
                          b' {"authorization_code": 123456}}}}',                    "reversed"),
        ("paypal",  201,  b'{"purchase_units": [{"payments": {"captures": [{"id": "C1",'
                          b' "status": "DECLINED", "processor_response": "5400"}]}}]}',
                                                                                   "cancelled"),
        ("paypal",  500,  b'{"name": "\\udfff", "message": {"nested": 1}}',         "financial_declined"),
        ("stripe",  200,  b"[" * 5000 + b"]" * 5000,                                "cancelled"),
    ],
    ids=["surrogate-message", "decline-code-00", "error-text", "integer-auth-code",
         "processor-text", "retry-odd-name", "deep-nesting"],
)
async def test_wrong_types_end_the_sale_in_a_stored_state(
        data_dir: Path, kind: str, status: int, body: bytes, state: str) -> None:
    """#17 item 6: wrong types, lone surrogates and deep nesting in an answer end the sale in
    a stored state — declined, or cancelled with the reversal queued — never a raw error
    out of the manager; a decline whose code looks like an approval stays a decline; an
    approval with an odd approval code stays an approval without it (here the card then
    declines at GENERATE AC 2, no ARPC came, and the approval is reversed)."""
    async with shop(data_dir, _rest(kind, _answer(status, body))) as s:
        out = await s.manager.sale(sale("600.00"), in_process_reader("visa-credit", "contact"))
        assert (out.state, out.approved) == (state, False)
        assert s.state(out.payment_id) == state
        if state == "cancelled":
            assert len(_reversals(s, out.payment_id)) == 1


@pytest.mark.parametrize(
    "emv_data",
    [
        bytes.fromhex("9114") + bytes(20),      # tag 91 of 20 bytes (Annex A: 8-16)
        bytes.fromhex("910361") + b"bc",        # tag 91 of 3 bytes
        bytes.fromhex("91"),                    # a tag without its length
        bytes.fromhex("FFFFFF"),                # not BER-TLV at all
        b"\x72" * 40,                           # nesting that never closes
    ],
    ids=["91-long", "91-short", "91-cut", "garbage", "nested"],
)
async def test_unusable_issuer_data_keeps_the_approval_and_its_reversal(
        data_dir: Path, emv_data: bytes) -> None:
    """#17 item 7: an approval whose DE 55 is malformed or whose tag 91 has the wrong length
    reaches GENERATE AC 2 as an issuer authentication failure (TVR byte 5 b7, Book 3
    §10.9); the card declines it, so the approval is reversed — here the reversal is not
    answered and stays queued in the outbox (reversal_pending), never dropped."""
    approval = replace(response(code="00"), emv_data=emv_data)
    lost = PspTimeoutError("no answer", connector="cih")
    connector = ScriptedConnector("cih", {Operation.AUTHORISE: [approval],
                                          Operation.REVERSE: [lost] * 5})
    async with shop(data_dir, connector) as s:
        out = await s.manager.sale(sale("600.00"), in_process_reader("visa-credit", "contact"))
        assert out.state == "reversal_pending" and "GENERATE AC 2" in out.reason
        assert int(out.emv["tvr"][8:10], 16) & 0x40  # issuer authentication failed
        reversals = _reversals(s, out.payment_id)
        assert [r["original"]["transaction_id"] for r in reversals] == [str(out.payment_id)]
        assert reversals[0]["connector"] == "cih"


async def test_unusable_issuer_data_reversed_at_once(data_dir: Path) -> None:
    """#17 item 7: the same approval with a reachable PSP is reversed at once (reversed),
    the host's answer and approval code kept on the payment."""
    approval = replace(response(code="00"), emv_data=bytes.fromhex("9103616263"))
    connector = ScriptedConnector("cih", {Operation.AUTHORISE: [approval]})
    async with shop(data_dir, connector) as s:
        out = await s.manager.sale(sale("600.00"), in_process_reader("visa-credit", "contact"))
        assert out.state == "reversed" and not out.approved
        assert [c[0] for c in connector.calls] == [Operation.AUTHORISE, Operation.REVERSE]
        stored = s.store.connection.execute(
            "SELECT psp_reference FROM payments WHERE id = ?",
            (str(out.payment_id),)).fetchone()[0]
        assert json.loads(stored)["connector"] == "cih"


async def test_a_card_pan_failing_luhn_cancels_cleanly(data_dir: Path) -> None:
    """A card whose PAN fails Luhn cannot be tokenised: nothing is sent, and the sale ends
    cancelled with its PoP record withdrawn — the card's error, not a raw ValueError."""
    card = get_profile("visa-credit")
    bad = replace(card, apps=(replace(card.apps[0], pan="4761739001010011"),))
    connector = ScriptedConnector("cih")
    async with shop(data_dir, connector) as s:
        out = await s.manager.sale(sale("600.00"),
                                   SimulatedCardReader(EmvCard(bad, Interface.CONTACT)))
        assert out.state == "cancelled" and "cannot be tokenised" in out.reason
        assert "4761739001010011" not in out.reason
        assert connector.calls == []


async def test_card_data_refused_before_sending_cancels_cleanly(data_dir: Path) -> None:
    """Card data refused on the way out (here by the connector, before anything is sent)
    ends the sale cancelled with the PoP record withdrawn — the card's error, not an
    ExceptionGroup out of the legs' TaskGroup."""
    refused = CardDataError("the card's data cannot be sent online: DE 55 over 255 bytes")
    connector = ScriptedConnector("cih", {Operation.AUTHORISE: [refused]})
    async with shop(data_dir, connector) as s:
        out = await s.manager.sale(sale("600.00"), in_process_reader("visa-credit", "contact"))
        assert out.state == "cancelled" and "cannot be sent online" in out.reason
        kinds = [kind for _, kind, _ in s.outbox(out.payment_id)]
        assert "pop_cancel" in kinds and "reversal" not in kinds


async def test_issuer_scripts_in_an_approval_reach_the_card(data_dir: Path) -> None:
    """Issuer scripts in the host's DE 55 are sent to the card after GENERATE AC 2 (template
    72, Book 3 §10.10) and their results kept with the payment (9F5B); the simulated card
    refuses a script without a valid MAC, which TVR byte 5 b5 records."""
    put_data = bytes.fromhex("04DA9F580101") + bytes(1)  # PUT DATA, no secure-messaging MAC
    script = tlv.encode(0x72, tlv.encode(0x9F18, bytes.fromhex("0000002A"))
                        + tlv.encode(0x86, put_data))
    approval = replace(response(code="00"), emv_data=script)
    connector = ScriptedConnector("cih", {Operation.AUTHORISE: [approval]})
    async with shop(data_dir, connector) as s:
        out = await s.manager.sale(sale("600.00"), in_process_reader("visa-credit", "contact"))
        assert out.emv["issuer_script_results"] == "110000002A"  # failed at command 1
        assert int(out.emv["tsi"][0:2], 16) & 0x04  # script processing performed
        assert int(out.emv["tvr"][8:10], 16) & 0x10  # script failed after GENERATE AC 2
