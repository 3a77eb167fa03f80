"""The ISO 8583 connector against the simulated acquirer host, on loopback."""

from __future__ import annotations

import logging
import ssl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_sync.connectors import (
    Amount,
    BreakerSettings,
    Iso8583Connector,
    Iso8583Settings,
    Outcome,
    PspOutboxTransport,
    RefundRequest,
    Router,
    RouteRule,
    RoutingKey,
)
from edge_sync.connectors.errors import (
    ConnectorsExhaustedError,
    MalformedResponseError,
    OutcomeUnknownError,
    PspTimeoutError,
    PspUnreachableError,
    ReversalPendingError,
)
from edge_sync.memory_outbox import MemoryOutbox
from edge_sync.outbox import RetryPolicy
from edge_sync.pki import ensure_test_pki
from edge_sync.signing import SoftwareSigner
from edge_sync.worker import OutboxWorker, WorkerSettings
from etika_errors import EtikaError
from simulators.psp.acquirer import LOW_BALANCE_PAN, Acquirer
from simulators.psp.iso_host import Iso8583Host
from simulators.psp.keys import private_key_path, public_key_path
from simulators.psp.server import free_port
from tests.fixtures.psp import MAD, VISA_PAN, authorisation, host_context

pytestmark = [pytest.mark.network, pytest.mark.filterwarnings("ignore:.*TripleDES")]

KEY = RoutingKey(network="visa", currency="MAD", amount_minor=MAD.minor)
IsoFactory = Callable[..., Any]


async def no_sleep(_: float) -> None:
    return None


def router(*connectors: Iso8583Connector, failures: int = 5) -> Router:
    return Router([RouteRule("all", tuple(c.name for c in connectors))],
                  {c.name: c for c in connectors}, {},
                  breakers={c.name: BreakerSettings(failures=failures, reset_s=60)
                            for c in connectors},
                  sleep=no_sleep)


async def test_approve_with_arpc_and_references(iso_host: IsoFactory) -> None:
    """A sale is approved, the balance moves once, the ARPC and RRN come back."""
    async with iso_host() as sim:
        request = authorisation()
        answer = await sim.connector.authorise(request)
        assert (answer.outcome, answer.code) == (Outcome.APPROVE, "00")
        assert answer.emv_data[:1] == b"\x91"  # issuer authentication data for the card
        assert answer.reference.approval_code and answer.reference.rrn
        assert sim.acquirer.postings == 1
        sent = sim.host.received[0]
        assert "2" not in sent and "35" not in sent and "125" in sent


@pytest.mark.parametrize(
    ("faults",           "card",                           "code"),
    [
        ("decline=05",       {},                               "05"),
        ("",                 {"pan": LOW_BALANCE_PAN},         "51"),
        ("",                 {"expiry": "2301"},               "54"),
        ("",                 {"tamper": True},                 "05"),
    ],
)
async def test_declines(iso_host: IsoFactory, faults: str, card: dict[str, Any],
                        code: str) -> None:
    """Declines come back classified with the host's own code; no money moves."""
    async with iso_host(faults) as sim:
        answer = await sim.connector.authorise(authorisation(**card))
        assert (answer.outcome, answer.code) == (Outcome.DECLINE, code)
        assert sim.acquirer.postings == 0


async def test_timeout_sends_a_reversal(iso_host: IsoFactory) -> None:
    """An unanswered sale is reversed at once: the host undoes it, the card is not charged."""
    async with iso_host("timeout=1") as sim:
        request = authorisation()
        with pytest.raises(ConnectorsExhaustedError) as info:
            await router(sim.connector).authorise(request, KEY)
        assert info.value.fields["attempts"][0]["reason"] == "AuthorisationReversedError"
        assert [m["t"] for m in sim.host.received] == ["0200", "0400"]
        assert sim.acquirer.entry(str(request.transaction_id)).state == "reversed"
        assert sim.acquirer.account(VISA_PAN).balance == 10_000_000


async def test_same_transaction_twice_is_charged_once(iso_host: IsoFactory) -> None:
    """The terminal sending a payment again (same UUID) gets the first answer, replayed."""
    async with iso_host() as sim:
        request = authorisation()
        first = await sim.connector.authorise(request)
        second = await sim.connector.authorise(request)
        assert (first.code, second.code) == ("00", "00")
        assert second.replayed and not first.replayed
        assert second.reference.approval_code == first.reference.approval_code
        assert sim.acquirer.postings == 1


async def test_breaker_opens_and_routing_falls_through(iso_host: IsoFactory) -> None:
    """A host whose issuer is unavailable (91) opens its breaker; payments go to the next."""
    async with iso_host("decline=91", name="cih") as bad, iso_host(name="bmce") as good:
        r = router(bad.connector, good.connector, failures=2)
        for _ in range(4):
            answer = await r.authorise(authorisation(), KEY)
            assert answer.approved and answer.reference.connector == "bmce"
        assert len(bad.host.received) == 2  # then the breaker kept it out
        assert r.breakers["cih"].state.value == "open"
        assert bad.acquirer.postings == 0 and good.acquirer.postings == 4


async def test_timeouts_count_towards_the_breaker(iso_host: IsoFactory) -> None:
    """Timed-out (and reversed) authorisations are failures too."""
    async with iso_host("timeout=1") as bad, iso_host(name="bmce") as good:
        r = router(bad.connector, good.connector, failures=1)
        first = await r.authorise(authorisation(), KEY)
        second = await r.authorise(authorisation(), KEY)
        assert first.reference.connector == second.reference.connector == "bmce"
        assert [m["t"] for m in bad.host.received] == ["0200", "0400"]


@pytest.mark.parametrize("fault", ["malformed=1", "truncated=1"])
async def test_unreadable_answer_is_clear(iso_host: IsoFactory, fault: str) -> None:
    """A garbled or cut answer says so and names the transaction and its STAN."""
    async with iso_host(fault) as sim:
        request = authorisation()
        with pytest.raises(MalformedResponseError) as info:
            await sim.connector.authorise(request)
        assert info.value.fields["idempotency_key"] == str(request.transaction_id)
        assert info.value.fields["reference"].stan == sim.host.received[0]["11"]
        assert "unknown" in str(info.value)


@pytest.mark.parametrize("fault", ["malformed=1", "truncated=1"])
async def test_unreadable_answer_loses_no_transaction(iso_host: IsoFactory, fault: str) -> None:
    """Through routing the payment in doubt is reversed at the host: nothing is lost."""
    async with iso_host(fault) as sim:
        request = authorisation()
        with pytest.raises(ConnectorsExhaustedError) as info:
            await router(sim.connector).authorise(request, KEY)
        assert "outcome is unknown" in info.value.fields["attempts"][0]["detail"]
        assert sim.acquirer.entry(str(request.transaction_id)).state == "reversed"
        assert sim.acquirer.account(VISA_PAN).balance == 10_000_000


async def test_dropped_connection_is_an_unknown_outcome(iso_host: IsoFactory) -> None:
    """A host that hangs up after acting gives OutcomeUnknownError; the link reconnects after."""
    async with iso_host("drop-after=1") as sim:
        with pytest.raises(OutcomeUnknownError) as info:
            await sim.connector.authorise(authorisation())
        assert not isinstance(info.value, PspTimeoutError | MalformedResponseError)
        assert (await sim.connector.echo()).approved


async def test_duplicate_answer_is_ignored(
    iso_host: IsoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A duplicated answer is dropped; the next exchange on the link is not confused."""
    caplog.set_level(logging.WARNING, logger="edge_sync.connectors.iso8583")
    async with iso_host("duplicate=1") as sim:
        assert (await sim.connector.authorise(authorisation())).approved
        assert (await sim.connector.echo()).approved
    # The host did send the duplicate (it precedes the echo's answer on the stream), and
    # it was the one dropped: without this the test would pass with the fault never fired.
    dropped = [r for r in caplog.records if "dropped an answer nobody waits for" in r.getMessage()]
    assert len(dropped) == 1 and "MTI 0210" in dropped[0].getMessage()


async def test_unreachable_host() -> None:
    """Nothing listening: PspUnreachableError, nothing was sent."""
    connector = Iso8583Connector(Iso8583Settings(
        host_context(), "127.0.0.1", free_port(), public_key_path("iso8583").read_bytes(),
        timeout_s=0.5))
    with pytest.raises(PspUnreachableError, match="nothing was sent"):
        await connector.authorise(authorisation())
    await connector.aclose()


async def test_auth_completion_refund_status_and_echo(iso_host: IsoFactory) -> None:
    """0100 holds, 0220 captures less, 0200/20 refunds part, 0600 reports, 0800 echoes."""
    async with iso_host() as sim:
        auth = await sim.connector.authorise(authorisation(capture=False))
        assert auth.reference.mti == "0100" and auth.approved
        done = await sim.connector.complete(auth.reference, Amount(2000, "MAD", 504, 2))
        assert done.approved
        refund = await sim.connector.refund(
            RefundRequest(uuid.uuid4(), Amount(500, "MAD", 504, 2),
                          auth.reference))
        assert refund.approved
        status = await sim.connector.status(auth.reference)
        assert status.code == "00"
        assert (await sim.connector.echo()).approved
        assert sim.acquirer.account(VISA_PAN).balance == 10_000_000 - 2000 + 500
        assert [m["t"] for m in sim.host.received] == ["0100", "0220", "0200", "0600", "0800"]


async def test_reversal_of_an_unknown_original_is_confirmed(iso_host: IsoFactory) -> None:
    """A reversal of what the host never saw answers 25 (done); a late original is refused."""
    async with iso_host("drop=1") as sim:
        request = authorisation()
        with pytest.raises(OutcomeUnknownError) as info:
            await sim.connector.authorise(request)
        reversal = await sim.connector.reverse(info.value.fields["reference"], MAD)
        assert (reversal.outcome, reversal.code) == (Outcome.APPROVE, "25")
        late = await sim.connector.authorise(request)
        assert not late.approved
        assert sim.acquirer.postings == 0


async def test_tls_link(tmp_path: Path) -> None:
    """With TLS the same exchange runs over a verified server certificate."""
    pki = ensure_test_pki(tmp_path / "pki")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki.broker_pem, pki.broker_key)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca_pem))
    acquirer = Acquirer(private_key_path("iso8583").read_bytes())
    async with Iso8583Host(acquirer, ssl_context=server_ctx) as host:
        connector = Iso8583Connector(Iso8583Settings(
            host_context(), "127.0.0.1", host.port, public_key_path("iso8583").read_bytes(),
            timeout_s=2, ssl_context=client_ctx, server_hostname="127.0.0.1"))
        assert (await connector.authorise(authorisation())).approved
        await connector.aclose()
        untrusting = Iso8583Connector(Iso8583Settings(
            host_context(), "127.0.0.1", host.port, public_key_path("iso8583").read_bytes(),
            timeout_s=2, ssl_context=ssl.create_default_context(),
            server_hostname="127.0.0.1"))
        with pytest.raises(PspUnreachableError, match="SSL"):
            await untrusting.echo()
        await untrusting.aclose()


async def test_no_card_data_on_the_wire_in_errors_or_logs(
        iso_host: IsoFactory, caplog: pytest.LogCaptureFixture) -> None:
    """Across approvals, reversals and garbled answers no PAN reaches the wire, an error
    or a log line: card data travels only inside the P2PE envelope."""
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    async with iso_host("malformed=1,timeout=1,duplicate=1") as sim:
        r = router(sim.connector)
        for _ in range(4):
            try:
                answer = await r.authorise(authorisation(), KEY)
                seen.append(repr(answer))
            except EtikaError as exc:
                seen.append(f"{exc} {exc!r} {getattr(exc, 'fields', '')}")
        wire = [repr(fields) for fields in sim.host.received]
    text = "\n".join(seen + wire) + caplog.text
    assert VISA_PAN not in text and VISA_PAN[-10:] not in text


async def test_advice_and_its_repeat(iso_host: IsoFactory) -> None:
    """An offline approval is advised with 0220; a resend is the same message as 0221,
    answered once, even for a card now short of funds."""
    async with iso_host("drop-after=1") as sim:
        request = authorisation(pan=LOW_BALANCE_PAN)
        answer = await router(sim.connector).advice("cih", request)
        assert answer.approved and answer.replayed
        first, repeat = sim.host.received
        assert (first["t"], repeat["t"]) == ("0220", "0221")
        assert (first["11"], first["7"]) == (repeat["11"], repeat["7"])
        assert sim.acquirer.postings == 1


async def test_reversal_repeat_is_the_same_message(iso_host: IsoFactory) -> None:
    """A reversal resent after a lost answer is 0401 with the first one's STAN; once undone."""
    async with iso_host() as sim:
        sale = await sim.connector.authorise(authorisation())
        sim.host.faults.timeout = 1
        answer = await router(sim.connector).reverse(sale.reference, MAD)
        assert answer.approved
        reversal, repeat = sim.host.received[1:]
        assert (reversal["t"], repeat["t"]) == ("0400", "0401")
        assert reversal["11"] == repeat["11"]
        assert sim.acquirer.postings == 2  # the sale and one reversal


async def test_pending_reversal_is_queued_and_drained_later(iso_host: IsoFactory) -> None:
    """A host that goes silent: the reversal cannot be confirmed, is queued in the outbox,
    and the worker delivers it (as a repeat, answered once) when the host answers again."""
    async with iso_host("timeout=4") as sim:  # the sale and its three reversal tries
        r = router(sim.connector)
        request = authorisation()
        with pytest.raises(ReversalPendingError) as info:
            await r.authorise(request, KEY)
        outbox = MemoryOutbox()
        message_id = outbox.enqueue("psp:cih", "reversal", info.value.reversal,
                                    str(request.transaction_id), time.time(), priority=10)
        worker = OutboxWorker(outbox, {"psp:cih": PspOutboxTransport(r, "cih")},
                              SoftwareSigner.generate(),
                              WorkerSettings(terminal_id="ETK00001", batch_size=10,
                                             max_in_flight=10, ack_timeout_s=5,
                                             retry=RetryPolicy(base_s=0.01, cap_s=0.01)))
        report = await worker.drain()
        assert report.delivered == 1 and outbox.state_of(message_id) == "delivered"
        assert sim.host.received[-1]["t"] == "0401"
        assert sim.acquirer.entry(str(request.transaction_id)).state == "reversed"
        assert sim.acquirer.account(VISA_PAN).balance == 10_000_000
        worker.close()
