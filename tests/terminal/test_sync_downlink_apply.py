"""Config, blacklist and FX downlinks applied on the terminal's real profile and store."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from edge_sync.downlink import DownlinkHandler
from edge_sync.messages import build_downlink
from edge_sync.signing import SoftwareSigner
from terminal.errors import ConfigError
from terminal.profile import load_profile
from terminal.profile_swap import recover_profile, swap_in_profile
from terminal.store import Store
from terminal.store.fleet import FleetStore
from terminal.store.outbox import SqliteOutbox
from terminal.sync_hooks import TerminalDownlinkHooks

PLATFORM = SoftwareSigner.generate()
NEW_SYNC = """[sync]
mqtt_host = "broker.example"
mqtt_port = 9883
mqtt_tls = true
"""


@pytest.fixture
def profile(tmp_path: Path, default_profile_dir: Path) -> Path:
    target = tmp_path / "profiles" / "shop"
    shutil.copytree(default_profile_dir, target)
    return target


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store.open(tmp_path / "etika.db") as opened:
        yield opened


def test_swap_replaces_the_profile_atomically(profile: Path) -> None:
    """A valid update is swapped in whole; no staging directory is left behind."""
    swapped = swap_in_profile(profile, {"sync.toml": NEW_SYNC})
    assert swapped.sync.mqtt_port == 9883
    assert load_profile(profile).sync.mqtt_host == "broker.example"
    assert sorted(p.name for p in profile.parent.iterdir()) == ["shop"]


def test_invalid_update_leaves_the_profile_untouched(profile: Path) -> None:
    """A profile that does not load is refused naming the real file; the old one stays."""
    before = (profile / "limits.toml").read_text()
    with pytest.raises(ConfigError, match=re.escape(str(profile))) as info:
        swap_in_profile(profile, {"limits.toml": "[offline]\nmax_count = 'many'\n"})
    assert ".new-" not in str(info.value)
    assert (profile / "limits.toml").read_text() == before
    assert sorted(p.name for p in profile.parent.iterdir()) == ["shop"]


def test_recover_restores_a_half_done_two_rename_swap(profile: Path) -> None:
    """If a crash fell between the fallback's two renames, the previous profile comes back."""
    before = {f.name: f.read_text() for f in profile.iterdir() if f.is_file()}
    profile.rename(profile.with_name(".shop.previous"))
    recover_profile(profile)
    assert {f.name: f.read_text() for f in profile.iterdir() if f.is_file()} == before
    assert sorted(p.name for p in profile.parent.iterdir()) == ["shop"]
    assert load_profile(profile).terminal.terminal_id


async def test_downlinks_applied_to_profile_and_store(profile: Path, store: Store) -> None:
    """Signed config/blacklist/FX downlinks land in the profile and the store; a bad
    profile is refused and an alert row is queued for the platform."""
    fleet = FleetStore(store)
    outbox = SqliteOutbox(store)
    terminal_id = load_profile(profile).terminal.terminal_id
    handler = DownlinkHandler(
        PLATFORM.public_key_pem(), TerminalDownlinkHooks(fleet, profile), outbox,
        terminal_id=terminal_id,
    )
    sequence = iter(range(1, 100))

    async def push(kind: str, payload: dict[str, Any]) -> str:
        raw = build_downlink(
            PLATFORM, terminal_id=terminal_id, kind=kind, seq=next(sequence), payload=payload
        ).to_json()
        return (await handler.handle(kind, raw)).outcome

    assert await push("config", {"version": "7", "files": {"sync.toml": NEW_SYNC}}) == "applied"
    assert load_profile(profile).sync.mqtt_port == 9883
    assert await push("config", {"version": "8", "files": {"sync.toml": "[sync]\nnope = 1\n"}}) \
        == "rejected"
    assert load_profile(profile).sync.mqtt_port == 9883
    blacklist = {"version": 1, "mode": "replace",
                 "entries": [{"type": "token", "value": "tok_abc"}, {"type": "bin", "value": "476173"}]}
    assert await push("blacklist", blacklist) == "applied"
    assert fleet.is_blacklisted("bin", "476173") and fleet.is_blacklisted("token", "tok_abc")
    assert await push("blacklist", {"version": 2, "mode": "remove",
                                    "entries": [{"type": "bin", "value": "476173"}]}) == "applied"
    assert not fleet.is_blacklisted("bin", "476173")
    fx = {"base": "MAD", "as_of": "2026-11-22T00:00:00Z", "rates": {"EUR": "10.85", "USD": "9.9"}}
    assert await push("fx", fx) == "applied"
    assert fleet.fx_rates()["EUR"] == {"base": "MAD", "rate": "10.85",
                                       "as_of": "2026-11-22T00:00:00Z"}
    kinds = [r[0] for r in store.connection.execute("SELECT kind FROM outbox ORDER BY id")]
    assert kinds == ["downlink_applied", "alert"]
    assert store.verify_journal() > 0
