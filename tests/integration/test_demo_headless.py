"""``etika demo --headless --transactions 200``: the scripted day drains, the four ledgers
agree, and nothing written anywhere holds a clear card number."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from simulators.card.profiles import PROFILES
from simulators.demo.headless import mix

warnings.filterwarnings("ignore", message=".*TripleDES.*")

pytestmark = [pytest.mark.network, pytest.mark.slow]

PROFILE = Path(__file__).resolve().parents[2] / "firmware-config" / "default"


def _card_numbers() -> set[str]:
    numbers: set[str] = set()
    for profile in PROFILES.values():
        for app in profile.apps:
            pan = getattr(app, "pan", None)
            if pan:
                numbers.add(str(pan))
    return numbers


def test_the_mix_has_every_kind_of_step() -> None:
    """The scripted mix holds sales on both interfaces, a decline, a timeout, a PoP failure,
    refunds, a void and an offline period."""
    steps = list(mix(200))
    kinds = {step.kind for _i, step, _offline in steps}
    assert kinds == {"sale", "decline", "timeout", "pop_failure", "refund", "void"}
    assert {step.interface for _i, step, _o in steps if step.kind == "sale"} == {
        "contact", "contactless"}
    assert any(offline for _i, _s, offline in steps)


def _demo(tmp_path: Path, transactions: int) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-m", "terminal.cli.main", "--data-dir", str(tmp_path / "data"),
         "demo", "--headless", "--transactions", str(transactions), "--json",
         "--work-dir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    summary: dict[str, Any] = json.loads(run.stdout)
    return summary


def test_short_day_refunds_waiting_at_the_end_reach_the_acquirer(tmp_path: Path) -> None:
    """A 20-sale day: one refund is of the PoP-deferred sale (it waits for the PoP record),
    the other is made while the acquirer is down; both go out at the final sync, so the four
    totals agree. The link is rebuilt twice in a few seconds: its STANs must not restart
    (a repeated STAN of the same second is answered as the earlier message's repeat)."""
    summary = _demo(tmp_path, 20)
    assert summary["steps"]["refund:pending_sync"] == 2, summary["steps"]
    assert summary["outbox_depth_after_sync"] == 0, summary
    totals = summary["totals_minor"]
    assert totals["terminal"] == totals["platform"] == totals["psp_simulator"] \
        == totals["pop_ledger"], totals
    assert totals["pop_ledger"]["MAD"] > 0


def test_headless_demo_drains_and_the_four_totals_agree(tmp_path: Path) -> None:
    """`etika demo --headless --transactions 200 --json`: exit 0, outbox empty after the
    final sync, terminal = platform = PSP simulator = PoP ledger, resident memory under
    150 MB, and no clear PAN in any file, WAL or output line the run produced."""
    work = tmp_path / "work"
    run = subprocess.run(
        [sys.executable, "-m", "terminal.cli.main", "--data-dir", str(tmp_path / "data"),
         "demo", "--headless", "--transactions", "200", "--json", "--work-dir", str(work)],
        capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout)
    assert summary["outbox_depth_after_sync"] == 0, summary
    totals = summary["totals_minor"]
    assert totals["terminal"] == totals["platform"] == totals["psp_simulator"] \
        == totals["pop_ledger"], totals
    assert totals["terminal"]["MAD"] > 0
    states = summary["final_states"]
    assert states["completed"] > 150 and states["voided"] == 1 and states["cancelled"] >= 1, \
        summary
    assert summary["rss_mb"] < 150, summary
    numbers = _card_numbers()
    assert numbers, "the simulated cards' numbers must be known to look for them"
    pattern = re.compile("|".join(sorted(numbers)).encode())
    leaks = [str(path) for path in tmp_path.rglob("*") if path.is_file()
             and pattern.search(path.read_bytes())]
    assert leaks == []
    assert not pattern.search((run.stdout + run.stderr).encode())
