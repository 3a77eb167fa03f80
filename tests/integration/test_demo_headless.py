"""``etika demo --headless --transactions 200``: the scripted day drains, the four ledgers
agree, and nothing written anywhere holds a clear card number."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

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


@pytest.mark.xfail(strict=False, reason=(
    "open (#14): refunds the demo makes during its offline period and on a pop_deferred sale "
    "stay pending_sync through the final sync, so the PoP ledger counts two refunds the "
    "terminal, platform and PSP simulator do not (seen at the end of the session)"))
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
