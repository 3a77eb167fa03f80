"""A refund of an offline approval reaches the acquirer, every link a real process.

The acquirer (``etika sim psp``, ISO 8583) is down for the sale: the card approves offline
and the advice waits in the outbox; a refund of it waits too (``pending_sync``), since it
must name the advice's acquirer reference. The acquirer comes back on its port, ``etika
sync run`` forwards the advice (0220), the terminal records the answer's reference on the
payment, and the settlement after the drain sends the refund: the acquirer's own ledger
(its control port) books it against the advice.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from terminal.payments.advice import advice_id
from tests.fixtures.mosquitto import free_port
from tests.integration.test_card_psp_cli import _wait_for_port
from tests.integration.test_pay_cli import ETIKA, _env, etika

pytestmark = [pytest.mark.network, pytest.mark.hsm]


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    if process.stdout:
        process.stdout.close()


@pytest.fixture
def offline_counter(tmp_path: Path) -> Iterator[tuple[Path, Path, int]]:
    """(profile, data dir, acquirer port): the key store initialised, the PoP back end up,
    every acquirer route pointed at one port nobody listens on yet."""
    from tests.conftest import DEFAULT_PROFILE_DIR

    profile, data_dir = tmp_path / "profile", tmp_path / "var"
    shutil.copytree(DEFAULT_PROFILE_DIR, profile)
    init = etika(profile, data_dir, "hsm", "init")
    assert init.returncode == 0, init.stderr
    public = etika(profile, data_dir, "hsm", "public-key")
    assert public.returncode == 0, public.stderr
    key_file = tmp_path / "terminal.pub.pem"
    key_file.write_text(public.stdout)
    acquirer_port = free_port()
    routing = re.sub(r"^port = 858[345]$", f"port = {acquirer_port}",
                     (profile / "routing.toml").read_text(), flags=re.MULTILINE)
    (profile / "routing.toml").write_text(routing)
    pop_port = free_port()
    pop = subprocess.Popen(
        [*ETIKA, "--data-dir", str(tmp_path / "pop"), "sim", "pop", "--port", str(pop_port),
         "--key-file", f"ETK00001={key_file}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    try:
        _wait_for_port(pop_port, pop)
        sync = re.sub(r'^pop_url = .*$', f'pop_url = "http://127.0.0.1:{pop_port}"',
                      (profile / "sync.toml").read_text(), flags=re.MULTILINE)
        (profile / "sync.toml").write_text(sync)
        yield profile, data_dir, acquirer_port
    finally:
        _stop(pop)


def test_refund_of_offline_sale_reaches_the_acquirer_after_sync(
        offline_counter: tuple[Path, Path, int]) -> None:
    """Offline sale → refund pending_sync → acquirer back → sync run: the advice is booked,
    its reference is on the payment, and the refund is approved by the acquirer against it."""
    profile, data_dir, port = offline_counter
    paid = etika(profile, data_dir, "pay", "--amount", "25.00", "--simulated", "visa-credit",
                 "--json")
    assert paid.returncode == 0, paid.stderr
    sale = json.loads(paid.stdout)
    assert (sale["state"], sale["offline"]) == ("completed", True), sale
    pid = sale["payment_id"]
    refund = etika(profile, data_dir, "refund", pid, "--amount", "10.00", "--json")
    assert refund.returncode == 0, refund.stderr
    waiting = json.loads(refund.stdout)
    assert waiting["state"] == "pending_sync", waiting
    control = free_port()
    psp = subprocess.Popen(
        [*ETIKA, "sim", "psp", "--kind", "iso8583", "--port", str(port),
         "--control-port", str(control)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    try:
        _wait_for_port(port, psp)
        _wait_for_port(control, psp)
        synced = etika(profile, data_dir, "sync", "run", "--once", "--destinations", "psp,pop")
        assert synced.returncode == 0, synced.stderr
        shown = etika(profile, data_dir, "tx", "show", pid, "--json")
        assert shown.returncode == 0, shown.stderr
        detail = json.loads(shown.stdout)
        assert detail["psp_reference"]["mti"] == "0220", detail["psp_reference"]
        assert [(r["id"], r["status"]) for r in detail["refunds"]] == [
            (waiting["refund_id"], "approved")]
        ledger = httpx.get(f"http://127.0.0.1:{control}/ledger/summary", timeout=5).json()
    finally:
        _stop(psp)
    entries = {e["key"]: e for e in ledger["entries"]}
    advice = entries[str(advice_id(pid))]  # the advice is booked on its own key
    assert (advice["kind"], advice["captured"], advice["refunded"]) == ("advice", 2500, 1000)
    assert entries[waiting["refund_id"]]["original_key"] == str(advice_id(pid))
    assert entries[waiting["refund_id"]]["code"] == "00"
