"""DESIGN §5: a full demo workload leaves no clear card number anywhere it wrote."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.card.profiles import PROFILES
from terminal.logs import luhn_valid

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.hardware, pytest.mark.hsm]

REPO = Path(__file__).resolve().parents[2]


def _card_numbers() -> set[str]:
    """Every PAN the simulated cards carry (the ones the workload reads)."""
    pans = set()
    for profile in PROFILES.values():
        for app in getattr(profile, "apps", ()):
            pans.add(app.pan)
    assert pans, "the card simulator's profiles carry no PANs: the scan would prove nothing"
    return pans


def _bcd(pan: str) -> bytes:
    """The PAN as a card stores it in 5A/57: packed BCD, padded with F (EMV Book 3 §4.3)."""
    return bytes.fromhex(pan + "F" * (len(pan) % 2))


def _luhn_runs(blob: bytes) -> set[str]:
    text = blob.decode("latin-1")
    runs = set(re.findall(r"(?<![0-9])[0-9]{13,19}(?![0-9])", text))
    return {run for run in runs if luhn_valid(run)}


def test_demo_workload_writes_no_card_number(tmp_path: Path, pcscd_when_installed: object
                                            ) -> None:
    """Database, WAL, logs, token files and every process's output hold no clear PAN."""
    # scripts/demo.py plugs its cards into pcscd's vpcd readers: pcscd_when_installed holds
    # the machine's pcscd for this test alone (and keeps it on pcscd's xdist worker).
    data_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    env["ETIKA_DATA_DIR"] = str(data_dir)
    init = subprocess.run([sys.executable, "-m", "terminal.cli.main", "hsm", "init"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert init.returncode == 0, init.stderr
    # What scripts/setup makes for a data dir besides the token: the test PKI that the
    # profile's [sync] TLS files name (config check requires every file it points to).
    pki = subprocess.run([sys.executable, "-m", "edge_sync.pki", str(data_dir / "pki")],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert pki.returncode == 0, pki.stderr
    demo = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"),
                           "--data-dir", str(data_dir)],
                          capture_output=True, env=env, timeout=400, check=False)
    assert demo.returncode == 0, demo.stdout.decode()[-3000:] + demo.stderr.decode()[-3000:]
    assert b"approved_online" in demo.stdout, "the workload did not reach the acquirer"

    pans = _card_numbers()
    written = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" for p in written), "no log was written: nothing to scan"
    assert any(p.name.startswith("etika.db") for p in written)
    for path in written:
        blob = path.read_bytes()
        found = {pan for pan in pans if pan.encode() in blob}
        assert not found, f"{path} holds a clear card number"
        # Raw card bytes (a 5A or 57 value stored as a blob) hold no ASCII digits to find;
        # the last byte is left out as it differs between 5A (F pad) and 57 (D separator).
        found = {pan for pan in pans if _bcd(pan)[:-1] in blob}
        assert not found, f"{path} holds a card number as raw BCD"
        assert not (_luhn_runs(blob) & pans), f"{path} holds a clear card number"
    for name, output in (("stdout", demo.stdout), ("stderr", demo.stderr)):
        assert not {pan for pan in pans if pan.encode() in output}, f"the demo's {name}"
