"""DESIGN §5, wire included: after a payments workload no card number or PIN is anywhere.

The workload runs the CLI against real processes (``etika sim psp`` ISO 8583 and ``etika
sim pop``, both with ``--capture``; Mosquitto with TLS client certificates; ``etika platform
serve``): sales on four simulated cards, one with the PIN on ``etika sim pinpad``, a refund,
a void, ``tx list``/``tx show``, ``tx recover``, ``sync run``. Then it scans:

* every file under the terminal's, the platform's and the PoP back end's data dirs
  (database, WAL, logs, receipts, token store);
* every MQTT message the broker carried (a subscriber on ``#`` with the platform's
  certificate, started before the workload);
* every request the PoP back end received (HTTP head and body) and every ISO 8583 frame the
  acquirer received (raw, and each decoded field on its own);
* every line the CLI printed (stdout and stderr).
"""

from __future__ import annotations

import re
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.test_card_psp_cli import pinpad_process_factory  # noqa: F401
from tests.leak_scan import Finding, card_secrets, scan_blob, scan_files
from tests.resilience.lab import ETIKA, REPO, Lab, env

pytestmark = [pytest.mark.network, pytest.mark.hsm, pytest.mark.slow]


class Capture:
    """A subscriber on ``#`` with the platform's certificate, keeping every message it may
    read (topic, payload): the uplinks and acks of every terminal."""

    def __init__(self, lab: Lab) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="leak-scan")
        client.tls_set(ca_certs=str(lab.pki.ca_pem), certfile=str(lab.pki.platform_pem),
                       keyfile=str(lab.pki.platform_key), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
        client.on_subscribe = lambda *_: self._subscribed.set()
        client.on_message = self._on_message
        # The platform's listener and certificate: the shipped ACL lets it read every uplink
        # and ack (a terminal's certificate reads only its own topics).
        client.connect(lab.broker.host, lab.broker.platform_port)
        client.loop_start()
        self.client = client
        if not self._subscribed.wait(20):
            raise AssertionError("the capturing subscriber never subscribed")

    def _on_message(self, _client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path / "lab", capture=True)
    try:
        lab.set_up()
        yield lab
    finally:
        lab.tear_down()


def _cli(lab: Lab, outputs: list[tuple[str, str]], *args: str) -> str:
    result = subprocess.run(
        [*ETIKA, "--profile", str(lab.profile), "--data-dir", str(lab.terminal_data), *args],
        capture_output=True, text=True, env=env(), cwd=REPO, timeout=120, check=False)
    outputs.append((f"etika {args[0]} stdout", result.stdout))
    outputs.append((f"etika {args[0]} stderr", result.stderr))
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _iso_frames(blob: bytes) -> Iterator[bytes]:
    at = 0
    while at + 2 <= len(blob):
        length = int.from_bytes(blob[at:at + 2], "big")
        yield blob[at + 2:at + 2 + length]
        at += 2 + length


def test_payments_workload_leaves_no_card_data_anywhere(
        lab: Lab, pinpad_process_factory: object) -> None:  # noqa: F811
    """Files, MQTT messages, HTTP bodies, ISO 8583 frames and CLI output hold no PAN (ASCII
    or BCD), no Luhn-valid 13–19 digit run and no PIN."""
    import json

    from edge_sync.connectors.iso8583_spec import decode

    capture = Capture(lab)
    outputs: list[tuple[str, str]] = []
    try:
        sales = []
        for card, amount in (("visa-credit", "120.00"), ("mastercard-debit", "75.50"),
                             ("cb", "33.10"), ("domestic-visa", "210.00")):
            sales.append(json.loads(_cli(lab, outputs, "pay", "--amount", amount,
                                         "--simulated", card, "--json")))
        pad = pinpad_process_factory("1234")  # type: ignore[operator]
        sales.append(json.loads(_cli(lab, outputs, "pay", "--amount", "450.00", "--simulated",
                                     "visa-credit", "--pinpad", pad, "--json", "--receipt")))
        assert [s["approved"] for s in sales] == [True] * 5, sales
        _cli(lab, outputs, "refund", sales[0]["payment_id"], "--amount", "20.00", "--json")
        _cli(lab, outputs, "void", sales[1]["payment_id"], "--json")
        _cli(lab, outputs, "tx", "list", "--json")
        for sale in sales:
            _cli(lab, outputs, "tx", "show", sale["payment_id"])
        _cli(lab, outputs, "tx", "recover", "--json")
        _cli(lab, outputs, "sync", "run", "--once", "--json", "--transport", "mqtt")
        lab.stop_processes()
    finally:
        capture.close()

    pans, pins = card_secrets()
    assert capture.messages, "the broker carried nothing: the MQTT scan would prove nothing"
    assert any(topic.endswith("/up") or "/up" in topic for topic, _ in capture.messages)
    findings: list[Finding] = []
    scanned = 0
    for root in (lab.terminal_data, lab.platform_data, lab.root / "pop"):
        found, count = scan_files(root)
        findings += found
        scanned += count
    assert scanned >= 5 and any(p.name == "etika.db" for p in lab.terminal_data.rglob("*"))
    for topic, payload in capture.messages:
        findings += scan_blob(payload, f"MQTT {topic}", pans, pins)
    pop_wire = lab.pop_capture.read_bytes()
    assert b"/v1/pop/" in pop_wire or b"POST" in pop_wire, "the PoP back end received nothing"
    findings += scan_blob(pop_wire, "PoP HTTP requests", pans, pins)
    frames = list(_iso_frames(lab.psp_capture.read_bytes()))
    assert frames, "the acquirer received nothing"
    for index, raw in enumerate(frames):
        # The raw frame for PAN bytes; each decoded field alone for digit runs (fixed-width
        # numeric fields sit side by side in the raw frame and would make runs of their own).
        findings += [f for f in scan_blob(raw, f"ISO 8583 frame {index}", pans, pins)
                     if f.what != "Luhn-valid run"]
        for name, value in decode(raw).items():
            findings += scan_blob(value.encode(), f"ISO 8583 frame {index} DE {name}",
                                  pans, pins)
    for source, text in outputs:
        findings += scan_blob(text.encode(), f"CLI {source}", pans, pins)
    assert not findings, "card data found:\n" + "\n".join(map(str, findings))


def test_a_planted_pan_in_a_log_line_fails_the_scan(tmp_path: Path) -> None:
    """The scanner is not blind: a PAN planted in a log line, in ASCII or in packed BCD, or
    a PIN in a log field, is found (and the report does not repeat the number)."""
    from tests.leak_scan import bcd

    pans, _pins = card_secrets()
    pan = sorted(pans)[0]
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "clean.jsonl").write_text('{"event": "sale", "masked_pan": "476173******0010"}\n')
    assert scan_files(tmp_path)[0] == []
    (logs / "ascii.jsonl").write_text(f'{{"event": "sale", "card": "{pan}"}}\n')
    (logs / "bcd.log").write_bytes(b"card read: " + bcd(pan) + b" end\n")
    (logs / "pin.jsonl").write_text('{"event": "pin", "pin": "1234"}\n')
    (logs / "hsm-pin").write_text(pan)  # the token's PIN file: a planted PAN is still found
    findings, count = scan_files(tmp_path)
    assert count == 5
    assert {(Path(f.source).name, f.what) for f in findings} >= {
        ("ascii.jsonl", "PAN ascii"), ("ascii.jsonl", "Luhn-valid run"),
        ("bcd.log", "PAN bcd"), ("pin.jsonl", "PIN"), ("hsm-pin", "PAN ascii")}
    assert not any(re.search(r"\d{13}", str(f)) for f in findings)


@pytest.mark.parametrize(
    ("blob",                                       "what"),
    [
        (b"x 4111111111111111 y",                  "Luhn-valid run"),  # not a simulator PAN
        (b"block=041234FFFFFFFFFF",                "PIN"),             # ISO 9564 format 0
        (b"PIN: 1234",                             "PIN"),
    ],
)
def test_scanner_finds_any_card_number_and_clear_pin_forms(blob: bytes, what: str) -> None:
    """Any Luhn-valid 13–19 digit run counts, not only the simulator's PANs; a clear PIN
    block field or a labelled PIN is found."""
    assert what in {f.what for f in scan_blob(blob, "planted")}


def test_scanner_ignores_what_is_not_card_data() -> None:
    """Amounts, STANs, times and a masked PAN are not findings."""
    assert scan_blob(b'{"amount_minor": 12000, "stan": "000123", "masked": "476173******0010",'
                     b' "at": 1764766000.123456, "time": "2026-12-03T13:00:00Z"}',
                     "clean") == []
