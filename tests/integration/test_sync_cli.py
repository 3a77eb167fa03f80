"""``etika sync run --once`` and ``etika sync status --json`` end to end over TLS."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
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
from tests.integration.platform_key import platform_public_key
from tests.integration.sync_receiver import PLATFORM_KEY, receiver_on

REPO = Path(__file__).resolve().parents[2]
TERMINAL_ID = "ETK00001"  # the default profile's, and the CN of the test PKI's certificate

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


@contextlib.contextmanager
def _platform_serve(mosquitto: MosquittoBroker, directory: Path
                    ) -> Iterator[tuple[Path, str, str]]:
    """``etika platform serve`` on the broker's platform listener (the shipped ACL) and on
    HTTPS with client certificates, a free loopback port, stopped by PID; yields its data
    dir, HTTPS URL and public key once its MQTT consumer has subscribed."""
    from edge_sync.https import HttpsLinkSettings
    from tests.fixtures.mosquitto import free_port

    data, port, log = directory / "platform-data", free_port(), directory / "platform.log"
    pki = mosquitto.pki
    public_key = platform_public_key(data)  # `platform key` first, as at deployment
    process = subprocess.Popen(
        [sys.executable, "-m", "terminal.cli.main", "--data-dir", str(data), "platform",
         "serve", *mosquitto.platform_cli_args(), "--http-port", str(port),
         "--worker-id", "sync-cli", "--https-cert", str(pki.platform_pem),
         "--https-key", str(pki.platform_key), "--https-client-ca", str(pki.ca_pem)],
        cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    url = f"https://127.0.0.1:{port}"
    link = HttpsLinkSettings(terminal_id=TERMINAL_ID, base_url=url, ca_file=pki.ca_pem,
                             cert_file=pki.terminal_pem, key_file=pki.terminal_key)
    try:
        deadline = time.monotonic() + 30
        while True:  # a guard against a platform that never comes up, not a timing check
            if process.poll() is not None:
                raise AssertionError(f"platform exited: {log.read_text()}")
            try:
                with httpx.Client(verify=link.ssl_context()) as http:
                    if http.get(f"{url}/healthz").json().get("mqtt") == "subscribed":
                        break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"platform never subscribed: {log.read_text()}")
            time.sleep(0.05)
        yield data, url, public_key
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=10)


def _queue_payments(data_dir: Path, count: int) -> None:
    """Whole payments, as the platform books them (so only the key can stop them)."""
    with Store.open(data_dir / "etika.db") as store:
        for i in range(count):
            payload = {"payment_id": f"pay-{i}", "amount_minor": 500, "currency": "MAD",
                       "business_date": "2026-11-21", "status": "completed"}
            store.record(StateChange(
                entity="terminal", entity_id=f"q{i}", to_state=None, action="report",
                outbox=(OutboxMessage("platform", "transaction", payload, f"q{i}"),),
            ))


@pytest.mark.network
@pytest.mark.parametrize(("transport", "platform_knows"), [
    ("mqtt",  "another key"),
    ("https", "another key"),
    ("https", "the key, revoked"),
])
def test_run_once_fails_when_the_platform_cannot_verify(
    transport: str, platform_knows: str, mosquitto: MosquittoBroker,
    default_profile_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """#16.12 on the real platform: when it holds another key for the terminal, or revoked
    its key, it answers nothing (no signed rejection for a signature it never checked); a
    --once run then exits 1 with one line saying how many messages were not acknowledged
    within the timeout and which platform commands to check, and every row stays in the
    outbox, pending (nothing lost, nothing dead-lettered)."""
    terminal_data = tmp_path / "terminal-data"
    _queue_payments(terminal_data, 5)
    with _platform_serve(mosquitto, tmp_path) as (platform_data, url, public_key):
        registered = tmp_path / "registered.pub.pem"
        registered.write_bytes(SIGNER.public_key_pem() if "revoked" in platform_knows
                               else SoftwareSigner.generate().public_key_pem())
        platform = ["--data-dir", str(platform_data), "platform"]
        assert main([*platform, "register-terminal", "--terminal-id", TERMINAL_ID,
                     "--public-key", str(registered)]) == 0
        if "revoked" in platform_knows:
            assert main([*platform, "revoke-key", TERMINAL_ID, "1"]) == 0
        profile = tmp_path / "profile"
        shutil.copytree(default_profile_dir, profile)
        (profile / "platform.pem").write_text(public_key)
        pki = mosquitto.pki
        (profile / "sync.toml").write_text(
            f'[sync]\nmqtt_host = "{mosquitto.host}"\nmqtt_port = {mosquitto.tls_port}\n'
            f'mqtt_tls = true\nhttps_url = "{url}"\nca_file = "{pki.ca_pem}"\n'
            f'cert_file = "{pki.terminal_pem}"\nkey_file = "{pki.terminal_key}"\n'
            'platform_public_key = "platform.pem"\nack_timeout_s = 2\n'
        )
        capsys.readouterr()
        code = main(["--data-dir", str(terminal_data), "--profile", str(profile), "sync", "run",
                     "--once", "--transport", transport, "--destinations", "platform"],
                    services_factory=_services)
        captured = capsys.readouterr()
    with Store.open(terminal_data / "etika.db") as store:
        states = store.connection.execute(
            "SELECT kind, state FROM outbox WHERE destination = 'platform'").fetchall()
    # The payments, the run's backlog report and its journal checkpoint: all still queued.
    assert [kind for kind, _ in states].count("transaction") == 5
    assert {state for _, state in states} == {"pending"}, states
    assert code == 1, captured.out + captured.err
    (line,) = captured.err.splitlines()
    assert line.startswith("etika: error: ")
    assert f"{len(states)} message(s) were not acknowledged within 2 s" in line
    assert "etika platform register-terminal" in line and "etika platform revoke-key" in line
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.network
def test_continuous_run_keeps_unverifiable_messages_and_says_so(
    mosquitto: MosquittoBroker, default_profile_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The long-running sync worker meets the same silence: it keeps the messages the
    platform cannot verify pending (retried with backoff, never dead-lettered), and its
    summary when stopped (SIGTERM) is exit 1 with the same one line."""
    import threading

    terminal_data = tmp_path / "terminal-data"
    _queue_payments(terminal_data, 3)
    with _platform_serve(mosquitto, tmp_path) as (platform_data, url, public_key):
        other = tmp_path / "other.pub.pem"
        other.write_bytes(SoftwareSigner.generate().public_key_pem())
        assert main(["--data-dir", str(platform_data), "platform", "register-terminal",
                     "--terminal-id", TERMINAL_ID, "--public-key", str(other)]) == 0
        profile = tmp_path / "profile"
        shutil.copytree(default_profile_dir, profile)
        (profile / "platform.pem").write_text(public_key)
        pki = mosquitto.pki
        (profile / "sync.toml").write_text(
            f'[sync]\nmqtt_host = "{mosquitto.host}"\nmqtt_port = {mosquitto.tls_port}\n'
            f'mqtt_tls = true\nhttps_url = "{url}"\nca_file = "{pki.ca_pem}"\n'
            f'cert_file = "{pki.terminal_pem}"\nkey_file = "{pki.terminal_key}"\n'
            'platform_public_key = "platform.pem"\nack_timeout_s = 2\n'
        )

        def stop_once_every_payment_went_unanswered() -> None:
            deadline = time.monotonic() + 60  # a guard against a hang, not a timing check
            while time.monotonic() < deadline:
                with Store.open(terminal_data / "etika.db") as store:
                    waiting = store.connection.execute(
                        "SELECT count(*) FROM outbox WHERE kind = 'transaction' "
                        "AND state = 'pending' AND attempts >= 1").fetchone()[0]
                if waiting == 3:
                    break
                time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGTERM)

        capsys.readouterr()
        stopper = threading.Thread(target=stop_once_every_payment_went_unanswered, daemon=True)
        stopper.start()
        code = main(["--data-dir", str(terminal_data), "--profile", str(profile), "sync", "run",
                     "--transport", "mqtt", "--destinations", "platform"],
                    services_factory=_services)
        stopper.join(5)
        captured = capsys.readouterr()
    with Store.open(terminal_data / "etika.db") as store:
        states = store.connection.execute(
            "SELECT state FROM outbox WHERE kind = 'transaction'").fetchall()
    assert [state for (state,) in states] == ["pending"] * 3
    assert code == 1, captured.out + captured.err
    (line,) = captured.err.splitlines()
    assert "message(s) were not acknowledged within 2 s" in line
    assert "etika platform register-terminal" in line and "Traceback" not in captured.err


@pytest.mark.network
def test_run_once_reports_a_rejection_by_the_platform(
    mosquitto: MosquittoBroker, default_profile_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The platform's explicit "rejected" (signed: the signature verified, but the
    transaction is not a payment it can book) dead-letters the row with its reason; the run
    exits 1 with one line pointing at `etika sync status` and `etika sync requeue-dead`."""
    terminal_data = tmp_path / "terminal-data"
    with Store.open(terminal_data / "etika.db") as store:
        store.record(StateChange(
            entity="terminal", entity_id="bad", to_state=None, action="report",
            outbox=(OutboxMessage("platform", "transaction", {"amount_minor": 1}, "bad-1"),),
        ))
    with _platform_serve(mosquitto, tmp_path) as (platform_data, url, public_key):
        key_file = tmp_path / "terminal.pub.pem"
        key_file.write_bytes(SIGNER.public_key_pem())
        assert main(["--data-dir", str(platform_data), "platform", "register-terminal",
                     "--terminal-id", TERMINAL_ID, "--public-key", str(key_file)]) == 0
        profile = tmp_path / "profile"
        shutil.copytree(default_profile_dir, profile)
        (profile / "platform.pem").write_text(public_key)
        pki = mosquitto.pki
        (profile / "sync.toml").write_text(
            f'[sync]\nmqtt_host = "{mosquitto.host}"\nmqtt_port = {mosquitto.tls_port}\n'
            f'mqtt_tls = true\nhttps_url = "{url}"\nca_file = "{pki.ca_pem}"\n'
            f'cert_file = "{pki.terminal_pem}"\nkey_file = "{pki.terminal_key}"\n'
            'platform_public_key = "platform.pem"\n'
        )
        capsys.readouterr()
        code = main(["--data-dir", str(terminal_data), "--profile", str(profile), "sync", "run",
                     "--once", "--json", "--transport", "mqtt", "--destinations", "platform"],
                    services_factory=_services)
        captured = capsys.readouterr()
    report = json.loads(captured.out)
    with Store.open(terminal_data / "etika.db") as store:
        (state, error), = store.connection.execute(
            "SELECT state, last_error FROM outbox WHERE idempotency_key = 'bad-1'").fetchall()
    assert code == 1 and report["rejected"] == 1 and report["unacknowledged"] == 0
    assert state == "dead" and "rejected by the receiver" in error
    (line,) = captured.err.splitlines()
    assert "1 message(s) rejected" in line and "etika sync requeue-dead" in line


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
