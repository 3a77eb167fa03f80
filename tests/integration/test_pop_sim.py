"""``etika sim pop`` as a real process over loopback: signatures, replay/redirect refusals,
faults on the wire, delayed confirmation, token activations, restart, and its CLI errors."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from edge_sync.errors import PopRejectedError, PopUnavailableError
from edge_sync.messages import canonical_json
from edge_sync.pki import TestPki as Pki
from edge_sync.pki import ensure_test_pki
from edge_sync.pop import HttpsPopClient, build_request, records_path
from edge_sync.signing import SoftwareSigner
from tests.fixtures.pop import ETIKA, PopSim, RecordMaker, start_pop_sim


@pytest.fixture
def terminal(pop_sim: PopSim) -> tuple[RecordMaker, SoftwareSigner]:
    records, signer = RecordMaker(), SoftwareSigner.generate()
    pop_sim.register(records.terminal_id, signer)
    yield records, signer
    pop_sim.faults("")


async def test_a_signature_by_another_key_is_refused_and_counted(
    pop_sim: PopSim, terminal: tuple[RecordMaker, SoftwareSigner]
) -> None:
    """A record signed with a key the back end does not hold for this terminal is refused."""
    records, _ = terminal
    before = pop_sim.get("/ledger/summary")["refused"].get("bad_signature", 0)
    async with HttpsPopClient(pop_sim.url, SoftwareSigner.generate(), records.terminal_id,
                              timeout_s=10) as forger:
        with pytest.raises(PopRejectedError, match="signature"):
            await forger.submit(records.sale())
    assert pop_sim.get("/ledger/summary")["refused"]["bad_signature"] == before + 1


async def test_an_unregistered_terminal_is_refused(pop_sim: PopSim) -> None:
    """A terminal with no registered key cannot submit."""
    records = RecordMaker()
    async with HttpsPopClient(pop_sim.url, SoftwareSigner.generate(), records.terminal_id,
                              timeout_s=10) as stranger:
        with pytest.raises(PopRejectedError, match="no key"):
            await stranger.submit(records.sale())


async def test_a_request_signed_for_another_back_end_is_redirected(
    pop_sim: PopSim, terminal: tuple[RecordMaker, SoftwareSigner]
) -> None:
    """The audience is signed: a record meant for another back end is refused here."""
    records, signer = terminal
    async with HttpsPopClient(pop_sim.url, signer, records.terminal_id, timeout_s=10,
                              audience="some-other-pop") as client:
        with pytest.raises(PopRejectedError, match="signed for"):
            await client.submit(records.sale())


def _post(pop_sim: PopSim, terminal_id: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(pop_sim.url + records_path(terminal_id), timeout=10,
                      content=json.dumps(body).encode())


def test_a_record_posted_under_another_terminal_is_redirected(
    pop_sim: PopSim, terminal: tuple[RecordMaker, SoftwareSigner]
) -> None:
    """Terminal A's validly signed request replayed to terminal B's path is refused."""
    records, signer = terminal
    victim = RecordMaker()
    pop_sim.register(victim.terminal_id, SoftwareSigner.generate())
    body = build_request(signer, op="submit", terminal_id=records.terminal_id,
                         audience="etika-pop-consensus",
                         fields={"record": records.sale().as_payload()})
    answer = _post(pop_sim, victim.terminal_id, body)
    assert answer.status_code == 403 and answer.json()["error"] == "redirected"


def test_an_old_signed_request_replayed_is_refused(
    pop_sim: PopSim, terminal: tuple[RecordMaker, SoftwareSigner]
) -> None:
    """A captured request whose sent_at is an hour old is refused as stale."""
    records, signer = terminal
    body = build_request(signer, op="submit", terminal_id=records.terminal_id,
                         audience="etika-pop-consensus",
                         fields={"record": records.sale().as_payload()},
                         sent_at=records.created_at(-3_600_000))
    answer = _post(pop_sim, records.terminal_id, body)
    assert answer.status_code == 401 and answer.json()["error"] == "stale_request"


def test_a_tampered_body_is_refused(
    pop_sim: PopSim, terminal: tuple[RecordMaker, SoftwareSigner]
) -> None:
    """Changing the amount after signing breaks the signature."""
    records, signer = terminal
    body = build_request(signer, op="submit", terminal_id=records.terminal_id,
                         audience="etika-pop-consensus",
                         fields={"record": records.sale().as_payload()})
    body["record"]["amount_minor"] = 1  # type: ignore[index]
    assert canonical_json(body)  # still a well-formed object
    answer = _post(pop_sim, records.terminal_id, body)
    assert answer.status_code == 401 and answer.json()["error"] == "bad_signature"


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b'{"v": 2}', b"\xff" * 10],
)
def test_malformed_requests_get_a_json_refusal(
    pop_sim: PopSim, terminal: tuple[RecordMaker, SoftwareSigner], body: bytes
) -> None:
    """Garbage bodies get a 4xx JSON refusal; the process keeps serving."""
    records, _ = terminal
    answer = httpx.post(pop_sim.url + records_path(records.terminal_id), content=body,
                        timeout=10)
    assert 400 <= answer.status_code < 500 and "error" in answer.json()
    assert pop_sim.get("/health")["ok"] is True


async def test_answering_twice_does_not_confuse_the_client(
    pop_sim: PopSim, terminal: tuple[RecordMaker, SoftwareSigner]
) -> None:
    """With the twice fault the answer is written twice on the connection; the client takes
    the first, and its next request (new or reused connection) still gets the right answer."""
    records, signer = terminal
    pop_sim.faults("twice=1")
    first, second = records.sale(), records.sale()
    async with HttpsPopClient(pop_sim.url, signer, records.terminal_id, timeout_s=10) as c:
        assert (await c.submit(first)).status == "confirmed"
        try:
            receipt = await c.submit(second)
        except PopUnavailableError:  # the stray answer poisoned the kept-alive connection
            receipt = await c.submit(second)
        assert receipt.record_id == second.record_id and receipt.status == "confirmed"


@pytest.mark.parametrize("fault", ["drop=1", "error=1"])
async def test_drop_and_error_apply_nothing(
    pop_sim: PopSim, terminal: tuple[RecordMaker, SoftwareSigner], fault: str
) -> None:
    """A dropped connection or a 503 is PopUnavailableError and the record is not in the
    ledger; the resubmission is then accepted."""
    records, signer = terminal
    pop_sim.faults(fault)
    record = records.sale()
    async with HttpsPopClient(pop_sim.url, signer, records.terminal_id, timeout_s=10) as c:
        with pytest.raises(PopUnavailableError):
            await c.submit(record)
        assert (await c.submit(record)).status == "confirmed"
    rows = [r for r in pop_sim.get("/ledger/records")["records"]
            if r["record_id"] == str(record.record_id)]
    assert len(rows) == 1


async def test_a_slow_answer_beyond_the_timeout_is_unavailable(
    pop_sim: PopSim, terminal: tuple[RecordMaker, SoftwareSigner]
) -> None:
    """slow=MS longer than the client's timeout: PopUnavailableError, yet the record was
    applied (the resubmission finds it)."""
    records, signer = terminal
    pop_sim.faults("slow=2000")
    record = records.sale()
    async with HttpsPopClient(pop_sim.url, signer, records.terminal_id, timeout_s=0.3) as c:
        with pytest.raises(PopUnavailableError, match="no answer"):
            await c.submit(record)
    pop_sim.faults("")
    async with HttpsPopClient(pop_sim.url, signer, records.terminal_id, timeout_s=10) as c:
        assert (await c.status(record.record_id)).status == "confirmed"


def test_token_activations_are_recorded_once(pop_sim: PopSim) -> None:
    """The token-system stand-in records an activation event once per event id and refuses
    the same id with other content."""
    event = {"event_id": str(uuid.uuid4()), "terminal_id": "ETK00001",
             "payment_id": str(uuid.uuid4()), "card_token": "4761731234560013",
             "amount_minor": 2500, "currency": "MAD", "pop_reference": "pop-1"}
    path = "/v1/token-system/activations"
    assert pop_sim.post(path, event).json() == {"status": "recorded"}
    assert pop_sim.post(path, event).json() == {"status": "duplicate"}
    assert pop_sim.post(path, {**event, "amount_minor": 1}).status_code == 422
    assert pop_sim.post(path, {"event_id": "x"}).status_code == 422
    assert [e for e in pop_sim.get(path)["events"] if e["event_id"] == event["event_id"]] == [
        event]


async def test_delayed_confirmation_and_restart(tmp_path: Path) -> None:
    """With --confirm-delay-ms the record is pending first and confirmed later; after a
    restart on the same data dir (key from --key-file) the ledger and its chain are intact."""
    signer = SoftwareSigner.generate()
    records = RecordMaker()
    key = tmp_path / "terminal.pem"
    key.write_bytes(signer.public_key_pem())
    options = ("--confirm-delay-ms", "200", "--key-file", f"{records.terminal_id}={key}")
    sim = start_pop_sim(tmp_path / "data", *options)
    record = records.sale()
    try:
        async with HttpsPopClient(sim.url, signer, records.terminal_id, timeout_s=10) as c:
            assert (await c.submit(record)).status == "pending"
            for _ in range(200):  # waits for an event, not a duration: the delay passes
                receipt = await c.status(record.record_id)
                if receipt.status == "confirmed":
                    break
                await asyncio.sleep(0.05)
            assert receipt.status == "confirmed" and receipt.pop_reference
    finally:
        assert sim.stop() == 0
    again = start_pop_sim(tmp_path / "data", *options)
    try:
        async with HttpsPopClient(again.url, signer, records.terminal_id, timeout_s=10) as c:
            assert await c.status(record.record_id) == receipt
            with pytest.raises(PopRejectedError, match="replay"):
                await c.submit(replace(record, record_id=uuid.uuid4()))
        assert again.get("/ledger/verify") == {"ok": True, "entries": 2}
    finally:
        again.stop()


@pytest.mark.parametrize(
    ("options",                                   "message"),
    [
        (["--faults", "explode"],                 "unknown fault"),
        (["--key-file", "T1"],                    "TERMINAL_ID=PEM"),
        (["--key-file", "T1=/nonexistent.pem"],   "cannot read"),
        (["--confirm-delay-ms", "-5"],            "delay"),
    ],
)
def test_bad_options_are_one_line_not_a_traceback(
    tmp_path: Path, options: list[str], message: str
) -> None:
    """Bad --faults, --key-file or --confirm-delay-ms: exit 2 with one clear line."""
    result = subprocess.run([ETIKA, "sim", "pop", "--port", "0", "--data-dir",
                             str(tmp_path / "d"), *options],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


async def test_over_https_the_client_verifies_the_back_end(tmp_path: Path,
                                                           test_pki: Pki) -> None:
    """Served with --tls-cert, the client verifies it against the test CA and submits; a
    client that trusts another CA gets PopUnavailableError, not an ssl exception."""
    signer, records = SoftwareSigner.generate(), RecordMaker()
    key = tmp_path / "terminal.pem"
    key.write_bytes(signer.public_key_pem())
    sim = start_pop_sim(tmp_path / "data", "--tls-cert", str(test_pki.platform_pem),
                        "--tls-key", str(test_pki.platform_key),
                        "--key-file", f"{records.terminal_id}={key}")
    try:
        assert sim.url.startswith("https://")
        trusted = ssl.create_default_context(cafile=str(test_pki.ca_pem))
        async with HttpsPopClient(sim.url, signer, records.terminal_id, timeout_s=10,
                                  ssl_context=trusted) as client:
            assert (await client.submit(records.sale())).status == "confirmed"
        other_ca = ensure_test_pki(tmp_path / "other-pki")
        wrong = ssl.create_default_context(cafile=str(other_ca.ca_pem))
        async with HttpsPopClient(sim.url, signer, records.terminal_id, timeout_s=10,
                                  ssl_context=wrong) as client:
            with pytest.raises(PopUnavailableError, match=r"CERTIFICATE_VERIFY_FAILED|certif"):
                await client.submit(records.sale())
    finally:
        sim.stop()
