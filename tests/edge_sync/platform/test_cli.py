"""``etika platform`` commands run in-process: registry, reconcile, key, argument errors."""

from __future__ import annotations

import json
import stat
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.storage import open_storage
from edge_sync.signing import SoftwareSigner
from terminal.cli.main import main
from tests.edge_sync.platform.conftest import envelope


@pytest.fixture(autouse=True)
def _own_platform_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's platform gets a token of its own: in-process, SoftHSM2 keeps the token
    directory it first loaded, where another test's platform token (other PINs) may be."""
    monkeypatch.setenv("ETIKA_PLATFORM_TOKEN_LABEL", f"platform-{uuid.uuid4().hex[:12]}")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_register_then_ingest_then_reconcile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A terminal registered from a PEM file can send; reconcile --json lists the mismatch."""
    signer = SoftwareSigner.generate()
    key_file = tmp_path / "t1.pem"
    key_file.write_bytes(signer.public_key_pem())
    database = str(tmp_path / "p.db")
    status, out, _ = _run(capsys, "platform", "register-terminal", "--database", database,
                          "--terminal-id", "T-0001", "--public-key", str(key_file))
    assert status == 0 and "registered T-0001" in out

    storage = open_storage(database)
    eod = {"business_date": "2026-11-21",
           "totals": [{"currency": "MAD", "count": 1, "amount_minor": 999}]}
    acks = Ingestor(storage).ingest([
        RawUplink("T-0001", envelope(signer).to_json(), "transaction"),
        RawUplink("T-0001", envelope(signer, "eod_totals", eod).to_json(), "eod_totals"),
    ])
    storage.close()
    assert [a.status for a in acks] == ["accepted", "accepted"]

    status, out, _ = _run(capsys, "platform", "reconcile", "--database", database,
                          "--date", "2026-11-21", "--json")
    assert status == 1
    result = json.loads(out)
    assert [(m["terminal_id"], m["kind"]) for m in result["mismatches"]] == [
        ("T-0001", "amount_mismatch")]
    status, out, _ = _run(capsys, "platform", "reconcile", "--database", database,
                          "--date", "2026-11-21")
    assert status == 1 and "amount_mismatch" in out and "1 mismatch" in out
    status, out, _ = _run(capsys, "platform", "terminals", "--database", database, "--json")
    assert json.loads(out)["terminals"][0]["messages"] == 2


def test_key_is_created_once_in_the_token(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``platform key`` makes 0600 PIN files, the token and the key pair on first use, and
    prints the same key after; no key file is written."""
    status, first, err = _run(capsys, "--data-dir", str(data_dir), "platform", "key")
    assert status == 0 and first.startswith("-----BEGIN PUBLIC KEY-----")
    assert "generated the platform signing key" in err
    for name in ("token-pin", "token-so-pin"):
        assert stat.S_IMODE((data_dir / "platform" / name).stat().st_mode) == 0o600
    assert not list(data_dir.rglob("*.pem"))
    _, second, err = _run(capsys, "--data-dir", str(data_dir), "platform", "key")
    assert second == first and "generated" not in err


@pytest.mark.parametrize("command", [["push", "cmd", "{cmd}", "--terminal-id", "T-0001"],
                                     ["serve", "--no-mqtt"]])
def test_serve_and_push_never_create_a_platform_key(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """Only ``platform key`` creates: a worker or a push on a token that does not exist (a
    mistyped --token-label) stops, saying to run it, and makes no token, PIN file or key —
    a fresh key would sign what no terminal trusts."""
    cmd = tmp_path / "cmd.json"
    cmd.write_text('{"command": "sync_now"}')
    argv = [a.replace("{cmd}", str(cmd)) for a in command]
    status, _, err = _run(capsys, "--data-dir", str(data_dir), "platform", *argv,
                          "--token-label", f"typo-{uuid.uuid4().hex[:8]}")
    assert status == 2
    assert err.startswith("etika: error:") and "etika platform key" in err
    assert not (data_dir / "platform" / "token-pin").exists()


@pytest.mark.parametrize(
    ("argv",                                                                      "message"),
    [
        (["register-terminal", "--terminal-id", "T", "--public-key", "/nope.pem"], "cannot read"),
        (["register-terminal", "--terminal-id", "T", "--public-key", "{junk}"],   "neither a PEM"),
        (["reconcile", "--date", "yesterday"],                                    "--date"),
        (["reconcile", "--date", "2026-11-21", "--database", "mysql://x"],        "--database"),
        (["push", "fx", "{missing}", "--terminal-id", "T"],                       "cannot read"),
        (["push", "fx", "{junk}", "--terminal-id", "T"],                          "not valid"),
        (["push", "config", "{empty_dir}", "--terminal-id", "T"],                 "no <name>.toml"),
        (["push", "cmd", "{deep_json}", "--terminal-id", "T"],                    "nested"),
        (["push", "config", "{deep_toml}", "--terminal-id", "T"],                 "nested too deep"),
        (["push", "config", "{big_toml}", "--terminal-id", "T"],                  "4300 digits"),
        (["serve", "--no-mqtt", "--operator-token-file", "{short}"],              "16 characters"),
        (["register-terminal", "--terminal-id", "T/1", "--public-key", "{junk}"], "--terminal-id"),
        (["register-terminal", "--terminal-id", "T", "--public-key", "{junk}",
          "--key-version", "-1"],                                                 "--key-version"),
        (["serve", "--no-mqtt", "--operator-token-file", "{missing}"],            "cannot read"),
    ],
)
def test_bad_arguments_give_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Wrong files, dates and URLs end with 'etika: error: …' and a non-zero status."""
    junk = tmp_path / "junk.txt"
    junk.write_text("not a key, not json")
    empty = tmp_path / "empty"
    empty.mkdir()
    short = tmp_path / "token"
    short.write_text("secret\n")
    deep_json = tmp_path / "deep.json"
    deep_json.write_text('{"args": ' + "[" * 5000 + "]" * 5000 + "}")
    deep_toml = tmp_path / "deep.toml"
    deep_toml.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    big_toml = tmp_path / "big.toml"
    big_toml.write_text("x = " + "9" * 5000 + "\n")
    argv = [a.replace("{junk}", str(junk)).replace("{missing}", str(tmp_path / "no.json"))
            .replace("{empty_dir}", str(empty)).replace("{short}", str(short))
            .replace("{deep_json}", str(deep_json)).replace("{deep_toml}", str(deep_toml))
            .replace("{big_toml}", str(big_toml))
            for a in argv]
    status, _, err = _run(capsys, "--data-dir", str(tmp_path), "platform", *argv)
    assert status != 0
    assert err.startswith("etika: error:") and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("option",     "url"),
    [
        ("--psp-url", "http://[::1"),
        ("--psp-url", "http://127.0.0.1:99999"),
        ("--psp-url", "127.0.0.1:8080"),
        ("--psp-url", "ftp://127.0.0.1/"),
        ("--psp-url", ""),
        ("--pop-url", "http://[::1"),
        ("--pop-url", "localhost"),
    ],
)
def test_a_bad_ledger_url_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, url: str
) -> None:
    """A mistyped reconcile ledger URL ends with exit 2 naming the option, before any
    request (``http://[::1`` used to end in an internal error)."""
    with pytest.raises(SystemExit) as raised:  # argparse's usage error
        main(["--data-dir", str(tmp_path), "platform", "reconcile", "--date", "2026-11-21",
              option, url])
    err = capsys.readouterr().err
    assert raised.value.code == 2
    assert f"argument {option}:" in err.splitlines()[-1] and "Traceback" not in err


@pytest.fixture
def ledger_server() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback HTTP server answering every GET with the body last put in the list."""
    bodies: list[bytes] = [b"{}"]

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(bodies[-1])

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, name="ledger-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("entry",                                                     "message"),
    [
        ({"key": "k1", "state": "captured", "captured": "abc"},   "entries[0].captured"),
        ({"key": "k1", "state": "captured", "amount_minor": 1.5}, "entries[0].amount_minor"),
        ({"state": "captured", "captured": 100},                  "entries[0] has no key"),
        (7,                                                       "entries[0] is not an object"),
    ],
)
def test_an_unreadable_psp_ledger_entry_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    ledger_server: tuple[str, list[bytes]], entry: object, message: str,
) -> None:
    """An entry reconcile cannot read is a one-line error naming it (exit 1), never a
    traceback and never skipped (a skipped charge would hide a double charge)."""
    url, bodies = ledger_server
    bodies.append(json.dumps({"entries": [entry]}).encode())
    status, _, err = _run(capsys, "--data-dir", str(tmp_path), "platform", "reconcile",
                          "--database", str(tmp_path / "p.db"), "--date", "2026-11-21",
                          "--psp-url", url)
    assert status == 1
    assert err.startswith("etika: error: --psp-url:") and message in err
    assert "Traceback" not in err


def test_register_refuses_a_non_p256_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An RSA or P-384 key cannot be registered: terminals sign with P-256."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1()).public_key()
    path = tmp_path / "p384.pem"
    path.write_bytes(key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    status, _, err = _run(capsys, "--data-dir", str(tmp_path), "platform", "register-terminal",
                          "--terminal-id", "T", "--public-key", str(path))
    assert status == 2 and "P-256" in err


def test_register_terminal_refuses_a_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """#16.13: the terminal's TLS certificate is refused as its signing key (exit 2), naming
    `etika hsm public-key`; a PEM public key is registered and its fingerprint shown."""
    from edge_sync.pki import ensure_test_pki
    from edge_sync.signing import public_key_fingerprint

    pki = ensure_test_pki(tmp_path / "pki")
    database = str(tmp_path / "p.db")
    status, _, err = _run(capsys, "platform", "register-terminal", "--database", database,
                          "--terminal-id", "ETK00001", "--public-key", str(pki.terminal_pem))
    assert status == 2 and "certificate" in err and "etika hsm public-key" in err
    signer = SoftwareSigner.generate()
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(signer.public_key_pem())
    status, out, _ = _run(capsys, "platform", "register-terminal", "--database", database,
                          "--terminal-id", "ETK00001", "--public-key", str(key_file))
    assert status == 0
    assert public_key_fingerprint(signer.public_key_pem()) in out


def test_a_fixed_key_is_used_at_once(tmp_path: Path) -> None:
    """#16.13: after a terminal's wrong key is replaced, its next message verifies at once
    (no wait for the platform's key cache to expire)."""
    right = SoftwareSigner.generate()
    wrong = SoftwareSigner.generate()
    storage = open_storage(str(tmp_path / "p.db"))
    try:
        storage.register_key("T-0001", 1, wrong.public_key_pem().decode(), "2026-11-21T00:00Z")
        ingestor = Ingestor(storage)
        (refused,) = ingestor.ingest([RawUplink("T-0001", envelope(right).to_json(),
                                                "transaction")])
        assert refused is None and ingestor.counts["refused"] == 1  # unverified: no ack
        storage.register_key("T-0001", 1, right.public_key_pem().decode(), "2026-11-21T00:01Z")
        (accepted,) = ingestor.ingest([RawUplink("T-0001", envelope(right).to_json(),
                                                 "transaction")])
        assert accepted is not None and accepted.status == "accepted"
    finally:
        storage.close()


def test_terminals_names_the_journal_stretches_no_checkpoint_covers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An auditor running ``etika platform terminals`` sees each terminal's unchecked
    journal stretch in words, and ``--json`` lists it per terminal."""
    from edge_sync.platform.records import StoredCheckpoint, Uplink

    database = str(tmp_path / "p.db")
    storage = open_storage(database)
    storage.register_key("T-0001", 1, "pem", "2026-12-03T00:00:00Z")
    checkpoints = [StoredCheckpoint(5, "5" * 64, 0, "0" * 64, "then", "m-5"),
                   StoredCheckpoint(20, "a" * 64, 14, "e" * 64, "then", "m-20")]
    storage.ingest([Uplink(c.message_id, "T-0001", "journal_checkpoint", c.entry_id,
                           c.message_id, "then", "{}", checkpoint=c) for c in checkpoints],
                   "2026-12-03T10:00:00.000Z")
    storage.close()
    status, out, _ = _run(capsys, "platform", "terminals", "--database", database)
    assert status == 0
    assert out.splitlines()[-1] == (
        "T-0001: journal entries 6-14 not covered by a verified checkpoint since "
        "2026-12-03T10:00:00.000Z (the checkpoint of entry 20 names entry 14, not received)")
    status, out, _ = _run(capsys, "platform", "terminals", "--database", database, "--json")
    assert json.loads(out)["terminals"][0]["checkpoint_gaps"] == [
        {"first_entry": 6, "last_entry": 14, "checkpoint_entry": 20,
         "since": "2026-12-03T10:00:00.000Z"}]
