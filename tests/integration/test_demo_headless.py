"""``etika demo --headless``: the scripted day drains, the four ledgers agree, and nothing
written anywhere holds a clear card number. 200 steps with in-process cards; 20 with each
card plugged into vpcd and read over pcscd, the platform behind Mosquitto."""

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
from simulators.demo.fleet import mosquitto_binary
from simulators.demo.headless import mix
from tests.fixtures.pcsc import Pcscd
from tests.fixtures.require import component_missing

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


def _demo(tmp_path: Path, transactions: int, cards: str = "in-process") -> dict[str, Any]:
    """Without the pcscd fixture (and its machine-wide lock) the cards stay in-process:
    the demo must not plug cards into a pcscd another run is using."""
    run = subprocess.run(
        [sys.executable, "-m", "terminal.cli.main", "--data-dir", str(tmp_path / "data"),
         "demo", "--headless", "--transactions", str(transactions), "--json",
         "--cards", cards, "--work-dir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    summary: dict[str, Any] = json.loads(run.stdout)
    summary["_output"] = run.stdout + run.stderr
    return summary


def _leaks(tmp_path: Path, output: str) -> list[str]:
    """Files (and the output) of the run that hold a simulated card's number."""
    numbers = _card_numbers()
    assert numbers, "the simulated cards' numbers must be known to look for them"
    pattern = re.compile("|".join(sorted(numbers)).encode())
    leaks = [str(path) for path in tmp_path.rglob("*") if path.is_file()
             and pattern.search(path.read_bytes())]
    return leaks + (["output"] if pattern.search(output.encode()) else [])


def test_bad_cards_mode_is_a_one_line_usage_error(tmp_path: Path) -> None:
    """An unknown --cards mode is refused in one line naming the choices (exit 2)."""
    run = subprocess.run(
        [sys.executable, "-m", "terminal.cli.main", "--data-dir", str(tmp_path / "data"),
         "demo", "--headless", "--cards", "usb", "--json"],
        capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "--cards 'usb'" in lines[0] and "in-process" in lines[0], \
        run.stderr


@pytest.mark.hardware
def test_day_over_pcscd_and_mosquitto_drains_and_the_four_totals_agree(
        tmp_path: Path, pcscd: Pcscd) -> None:
    """20 steps, each card plugged into vpcd (``etika sim card``) and read over pcscd (the
    fixture's, under the machine-wide lock: the demo uses it and starts none), the platform
    reached through Mosquitto with the shipped ACLs and TLS: outbox empty, four totals
    equal, no clear card number anywhere."""
    if mosquitto_binary() is None:
        component_missing("mosquitto is not installed (scripts/setup installs it)")
    summary = _demo(tmp_path, 20, cards="pcscd")
    assert summary["cards"] == "pcscd+vpcd", summary
    assert summary["platform_link"] == "mqtt", summary
    assert summary["outbox_depth_after_sync"] == 0, summary
    totals = summary["totals_minor"]
    assert totals["terminal"] == totals["platform"] == totals["psp_simulator"] \
        == totals["pop_ledger"], totals
    assert totals["pop_ledger"]["MAD"] > 0
    assert summary["steps"]["sale:completed"] >= 10, summary["steps"]
    assert summary["steps"]["timeout:cancelled"] == 1, summary["steps"]
    assert _leaks(tmp_path, summary["_output"]) == []


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
    """`etika demo --headless --transactions 200 --json --cards in-process`: exit 0, outbox
    empty after the final sync, terminal = platform = PSP simulator = PoP ledger, resident
    memory under 150 MB, and no clear PAN in any file, WAL or output line the run produced."""
    summary = _demo(tmp_path, 200)
    assert summary["cards"] == "in-process", summary
    assert summary["platform_link"] == ("mqtt" if mosquitto_binary() else "https"), summary
    assert summary["outbox_depth_after_sync"] == 0, summary
    totals = summary["totals_minor"]
    assert totals["terminal"] == totals["platform"] == totals["psp_simulator"] \
        == totals["pop_ledger"], totals
    assert totals["terminal"]["MAD"] > 0
    states = summary["final_states"]
    assert states["completed"] > 150 and states["voided"] == 1 and states["cancelled"] >= 1, \
        summary
    assert summary["rss_mb"] < 150, summary
    assert _leaks(tmp_path, summary["_output"]) == []
