"""Both command lines against each other: ``etika sync run`` into ``etika platform serve``.

The terminal's CLI (profile ``sync.toml`` pointing at the fixture broker's TLS listener,
the terminal certificate) drains its outbox into a real platform process (platform
certificate); the platform's fleet API then shows the terminal, its reported backlog and
what it booked.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from hsm import KeyStore
from hsm.fake import SoftwareKeyStore
from terminal.cli.context import CliContext
from terminal.cli.main import main
from terminal.services import TerminalServices
from terminal.services.fake import SoftwareSigningKeys
from terminal.store import OutboxMessage, StateChange, Store
from terminal.store.token_map import StoreTokenRegistry
from tests.fixtures.mosquitto import MosquittoBroker, free_port
from tests.integration.platform_key import platform_public_key

pytestmark = [pytest.mark.network, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TERMINAL_ID = "ETK00001"  # the default profile's, and the CN of the fixture's certificate
KEYS = SoftwareSigningKeys()
SIGNER = KEYS.for_version(1)


def _services(ctx: CliContext, **injected: Any) -> TerminalServices:
    """The real services with in-memory keys in place of the token (signing for the sync,
    card keys for the payments `sync run` settles afterwards)."""
    def card_keys(store: Store) -> KeyStore:
        return cast(KeyStore, SoftwareKeyStore(StoreTokenRegistry(store)))

    return TerminalServices(ctx.profile(), ctx.data_dir, signing_keys=KEYS,
                            key_store_factory=card_keys, **injected)




@pytest.fixture
def platform(mosquitto: MosquittoBroker, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A platform process on the broker's TLS listener; yields its data dir and base URL."""
    data = tmp_path / "platform-data"
    port = free_port()
    log = tmp_path / "platform.log"
    platform_public_key(data)  # `platform key` first, as at deployment: serve only opens it
    process = subprocess.Popen(
        [sys.executable, "-m", "terminal.cli.main", "--data-dir", str(data), "platform",
         "serve", *mosquitto.platform_cli_args(), "--http-port", str(port),
         "--worker-id", "cli"],
        cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"platform exited: {log.read_text()}")
            try:
                if httpx.get(f"{url}/healthz").json().get("mqtt") == "subscribed":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"platform never subscribed: {log.read_text()}")
            time.sleep(0.05)
        yield data, url
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=10)


def test_sync_run_drains_into_platform_serve(
    platform: tuple[Path, str], mosquitto: MosquittoBroker, default_profile_dir: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """The terminal's rows arrive once; the fleet API shows backlog, counts and totals."""
    platform_data, url = platform
    # The operator's two steps: give the terminal the platform key, register the terminal.
    profile = tmp_path / "profile"
    shutil.copytree(default_profile_dir, profile)
    (profile / "platform.pem").write_text(platform_public_key(platform_data))
    key_file = tmp_path / "terminal.pub.pem"
    key_file.write_bytes(SIGNER.public_key_pem())
    assert main(["--data-dir", str(platform_data), "platform", "register-terminal",
                 "--terminal-id", TERMINAL_ID, "--public-key", str(key_file)]) == 0
    pki = mosquitto.pki
    (profile / "sync.toml").write_text(
        f'[sync]\nmqtt_host = "{mosquitto.host}"\nmqtt_port = {mosquitto.tls_port}\n'
        f'mqtt_tls = true\nca_file = "{pki.ca_pem}"\ncert_file = "{pki.terminal_pem}"\n'
        f'key_file = "{pki.terminal_key}"\nplatform_public_key = "platform.pem"\n'
        "batch_size = 100\nmax_in_flight = 300\n"
    )
    terminal_data = tmp_path / "terminal-data"
    with Store.open(terminal_data / "etika.db") as store:
        for i in range(200):
            payload = {"payment_id": f"pay-{i}", "amount_minor": 500, "currency": "MAD",
                       "business_date": "2026-11-21", "status": "completed"}
            store.record(StateChange(
                entity="terminal", entity_id=f"e{i}", to_state=None, action="report",
                outbox=(OutboxMessage("platform", "transaction", payload, f"t{i}"),),
            ))
    capsys.readouterr()
    common = ["--data-dir", str(terminal_data), "--profile", str(profile), "sync"]
    # Platform only: the profile's ISO 8583 hosts MAC their messages with a key in the token.
    run = ["run", "--once", "--json", "--destinations", "platform"]
    assert main([*common, *run], services_factory=_services) == 0
    report = json.loads(capsys.readouterr().out)
    # + its backlog report and the journal checkpoint the 200 entries made due
    assert (report["delivered"], report["remaining"]) == (202, 0)

    terminal = httpx.get(f"{url}/v1/terminals/{TERMINAL_ID}",
                         params={"date": "2026-11-21"}).json()
    assert terminal["messages_by_kind"] == {"status": 1, "transaction": 200,
                                            "journal_checkpoint": 1}
    assert terminal["backlog"] == {"platform": 200}  # what it had queued when it started
    assert terminal["totals"] == [{"terminal_id": TERMINAL_ID, "business_date": "2026-11-21",
                                   "currency": "MAD", "count": 200, "amount_minor": 100_000}]
    # A second run has nothing left for the platform and stores nothing twice.
    assert main([*common, *run], services_factory=_services) == 0
    capsys.readouterr()
    # Two backlog reports; no second checkpoint: the journal did not move in between.
    assert httpx.get(f"{url}/v1/fleet").json()["messages"] == 203
