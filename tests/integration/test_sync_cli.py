"""``etika sync run --once`` and ``etika sync status --json`` end to end over TLS."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from edge_sync.messages import build_envelope, verify_envelope
from edge_sync.signing import SoftwareSigner
from hsm.fake import SoftwareKeyStore
from terminal.cli.context import CliContext
from terminal.cli.main import main
from terminal.services import TerminalServices
from terminal.services.fake import SoftwareSigningKeys
from terminal.store import OutboxMessage, StateChange, Store
from terminal.store.token_map import StoreTokenRegistry
from tests.fixtures.mosquitto import MosquittoBroker
from tests.integration.sync_receiver import PLATFORM_KEY, receiver_on

KEYS = SoftwareSigningKeys()
SIGNER = KEYS.for_version(1)


def _services(ctx: CliContext, **injected: Any) -> TerminalServices:
    """The real services with in-memory keys in place of the token (signing for the sync,
    card keys for the payments `sync run` settles afterwards)."""
    def card_keys(store: Store) -> Any:
        return SoftwareKeyStore(StoreTokenRegistry(store))

    return TerminalServices(ctx.profile(), ctx.data_dir, signing_keys=KEYS,
                            key_store_factory=card_keys, **injected)
PLATFORM = SoftwareSigner.generate()




@pytest.fixture
def profile(tmp_path: Path, default_profile_dir: Path, mosquitto: MosquittoBroker) -> Path:
    target = tmp_path / "profile"
    shutil.copytree(default_profile_dir, target)
    # The stand-in platform (AckingReceiver) signs its acks with PLATFORM_KEY.
    (target / "platform.pem").write_bytes(PLATFORM_KEY.public_key_pem())
    pki = mosquitto.pki
    (target / "sync.toml").write_text(
        f'[sync]\nmqtt_host = "{mosquitto.host}"\nmqtt_port = {mosquitto.tls_port}\n'
        f'mqtt_tls = true\nca_file = "{pki.ca_pem}"\ncert_file = "{pki.terminal_pem}"\n'
        f'key_file = "{pki.terminal_key}"\nplatform_public_key = "platform.pem"\n'
        "batch_size = 100\nmax_in_flight = 300\n"
    )
    return target


@pytest.mark.network
def test_sync_run_once_then_status(
    profile: Path, data_dir: Path, mosquitto: MosquittoBroker,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """run --once reports its backlog, signs an interval journal checkpoint (the journal
    moved and none was ever signed), drains the platform rows over TLS and leaves PoP rows
    to their connector; status --json then shows depth 0 and a last success for the platform;
    requeue-dead has nothing to do."""
    with Store.open(data_dir / "etika.db") as store:
        for i in range(250):
            store.record(StateChange(
                entity="terminal", entity_id=f"e{i}", to_state=None, action="report",
                outbox=(OutboxMessage("platform", "transaction",
                                      {"amount_minor": i, "currency": "MAD"}, f"t{i}"),),
            ))
        store.record(StateChange(
            entity="terminal", entity_id="p", to_state=None, action="report",
            outbox=(OutboxMessage("pop", "pop_record", {"x": 1}, "pop-1"),),
        ))
    common = ["--data-dir", str(data_dir), "--profile", str(profile), "sync"]
    with receiver_on(mosquitto, SIGNER.public_key_pem()) as rx:
        assert main([*common, "run", "--once", "--json", "--destinations", "platform,psp"],
                    services_factory=_services) == 0
    report = json.loads(capsys.readouterr().out)
    # + the status report and the journal checkpoint
    assert (report["delivered"], report["remaining"]) == (252, 0)
    assert len(rx.committed) == 252
    with Store.open(data_dir / "etika.db") as store:
        (checkpoint,) = store.connection.execute(
            "SELECT payload, state FROM outbox WHERE kind = 'journal_checkpoint'").fetchall()
        assert store.verify_journal() > 251
    assert json.loads(checkpoint[0])["reason"] == "interval" and checkpoint[1] == "delivered"

    assert main([*common, "status", "--json"]) == 0
    status = {d["destination"]: d for d in json.loads(capsys.readouterr().out)["destinations"]}
    assert status["platform"]["depth"] == 0 and status["platform"]["last_success"]
    assert status["pop"]["depth"] == 1 and status["pop"]["oldest_pending_age_s"] >= 0
    with Store.open(data_dir / "etika.db") as store:
        (payload,) = store.connection.execute(
            "SELECT payload FROM outbox WHERE kind = 'status'").fetchone()
    assert json.loads(payload) == {"backlog": {"platform": 250, "pop": 1}}
    assert main([*common, "requeue-dead"]) == 0
    assert "0 dead message(s) queued again" in capsys.readouterr().out


def test_status_on_an_empty_store(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """status works on a fresh data directory and says the outbox is empty."""
    assert main(["--data-dir", str(data_dir), "sync", "status"]) == 0
    assert "outbox empty" in capsys.readouterr().out


def test_run_without_the_pki_is_a_clear_error(
    data_dir: Path, default_profile_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Without the TLS files the profile names, run exits non-zero pointing at scripts/setup."""
    code = main(["--data-dir", str(data_dir), "--profile", str(default_profile_dir),
                 "sync", "run", "--once", "--transport", "https"], services_factory=_services)
    err = capsys.readouterr().err
    assert code != 0 and "scripts/setup" in err and "Traceback" not in err


@pytest.mark.hsm
def test_the_key_store_signer_signs_verifiable_envelopes(hsm_keystore: Any) -> None:
    """The real PKCS#11 signer satisfies edge_sync's Signer: its envelopes verify."""
    signer = hsm_keystore.signer()
    envelope = build_envelope(signer, terminal_id="ETK00001", kind="transaction", seq=1,
                              idempotency_key="k", payload={"t": time.time()})
    verify_envelope(envelope, signer.public_key_pem())


@pytest.mark.network
def test_psp_rows_go_through_their_connector(
    profile: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--destinations psp hands psp:<connector> rows to that connector; with the PSP host
    down the reversal waits for a retry (exit 1) instead of being lost or dead-lettered."""
    reversal = {"original": {"connector": "cih", "transaction_id": "t1", "mti": "0100",
                             "stan": "000001", "transmitted_at": "1122003000"},
                "amount": {"minor": 1000, "currency": "MAD", "numeric": 504, "exponent": 2}}
    with Store.open(data_dir / "etika.db") as store:
        store.record(StateChange(
            entity="terminal", entity_id="r", to_state=None, action="report",
            outbox=(OutboxMessage("psp:cih", "reversal", reversal, "rev-1", priority=10),),
        ))
    code = main(["--data-dir", str(data_dir), "--profile", str(profile), "sync", "run",
                 "--once", "--json", "--destinations", "psp"], services_factory=_services)
    report = json.loads(capsys.readouterr().out)
    with Store.open(data_dir / "etika.db") as store:
        (state, error) = store.connection.execute(
            "SELECT state, last_error FROM outbox WHERE destination = 'psp:cih'").fetchone()
    assert code == 1 and report["delivered"] == 0 and report["retried"] == 1
    assert state == "pending" and "cih" in error


def test_status_table_and_bad_destinations(
    data_dir: Path, default_profile_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """status prints one line per destination; a wrong --destinations is a clear error."""
    with Store.open(data_dir / "etika.db") as store:
        store.record(StateChange(
            entity="terminal", entity_id="p", to_state=None, action="report",
            outbox=(OutboxMessage("pop", "pop_record", {"x": 1}, "pop-1"),),
        ))
    assert main(["--data-dir", str(data_dir), "sync", "status"]) == 0
    out = capsys.readouterr().out
    assert "destination" in out and "pop" in out
    code = main(["--data-dir", str(data_dir), "--profile", str(default_profile_dir),
                 "sync", "run", "--once", "--destinations", "pop,bank"], services_factory=_services)
    err = capsys.readouterr().err
    assert code != 0 and "--destinations" in err and "Traceback" not in err


def _queue(data_dir: Path, count: int) -> None:
    with Store.open(data_dir / "etika.db") as store:
        for i in range(count):
            store.record(StateChange(
                entity="terminal", entity_id=f"q{i}", to_state=None, action="report",
                outbox=(OutboxMessage("platform", "transaction",
                                      {"amount_minor": i, "currency": "MAD"}, f"q{i}"),),
            ))


@pytest.mark.network
def test_run_once_fails_when_messages_are_rejected(
    profile: Path, data_dir: Path, mosquitto: MosquittoBroker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """#16.12: a --once run whose messages the platform rejects (here: it holds another key
    for the terminal) exits 1 and says why in one line, instead of 0."""
    _queue(data_dir, 5)
    other_key = SoftwareSigner.generate().public_key_pem()
    common = ["--data-dir", str(data_dir), "--profile", str(profile), "sync"]
    with receiver_on(mosquitto, other_key) as rx:
        code = main([*common, "run", "--once", "--transport", "mqtt", "--destinations", "platform"],
                    services_factory=_services)
    captured = capsys.readouterr()
    assert rx.rejected and not rx.committed
    assert code == 1, captured.out + captured.err
    assert "rejected" in captured.err and "requeue-dead" in captured.err


@pytest.mark.network
def test_stopped_run_reports_its_real_totals(
    profile: Path, data_dir: Path, mosquitto: MosquittoBroker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """#16.14: a continuous `sync run` stopped by SIGTERM prints what it delivered, not 0."""
    import os
    import signal
    import threading

    _queue(data_dir, 120)
    common = ["--data-dir", str(data_dir), "--profile", str(profile), "sync"]
    with receiver_on(mosquitto, SIGNER.public_key_pem()) as rx:

        def stop_when_drained() -> None:
            while len(rx.committed) < 121:  # the rows and the status report
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)

        stopper = threading.Thread(target=stop_when_drained, daemon=True)
        stopper.start()
        code = main([*common, "run", "--json", "--transport", "mqtt", "--destinations", "platform"],
                    services_factory=_services)
        stopper.join(5)
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["delivered"] >= 121 and report["remaining"] == 0


@pytest.mark.network
def test_sigterm_before_the_loop_starts_still_reports(
    profile: Path, data_dir: Path, mosquitto: MosquittoBroker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """#16.14: `sync run` installs its SIGTERM handler first: a SIGTERM arriving while it is
    still opening its services is remembered, and the run stops with its summary (exit 0)
    instead of being killed; the previous handler is restored afterwards."""
    import os
    import signal

    previous = signal.getsignal(signal.SIGTERM)

    def factory(ctx: CliContext, **injected: Any) -> TerminalServices:
        os.kill(os.getpid(), signal.SIGTERM)  # before the event loop runs
        return _services(ctx, **injected)

    code = main(["--data-dir", str(data_dir), "--profile", str(profile), "sync", "run",
                 "--json", "--transport", "mqtt", "--destinations", "platform"],
                services_factory=factory)
    assert code == 0
    assert json.loads(capsys.readouterr().out)["delivered"] == 0
    assert signal.getsignal(signal.SIGTERM) is previous
