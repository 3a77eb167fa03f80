"""The key store tokenising against the terminal's SQLite token map, on a real token."""

from __future__ import annotations

from pathlib import Path

import pytest

from hsm import KeyStore, luhn_valid
from terminal.store import Store
from terminal.store.token_map import StoreTokenRegistry
from tests.hsm.pans import pan_with_middle

pytestmark = pytest.mark.hsm


def test_tokens_are_stable_across_restarts_and_unique(hsm_keystore: KeyStore,
                                                      tmp_path: Path) -> None:
    """100 PANs sharing BIN and last 4 (13 digits: ~900 tokens) get distinct tokens through the
    store's map, and a restarted terminal (new store connection) gets the same tokens."""
    pans = [pan_with_middle("476173", f"{p:02d}0", "0119") for p in range(100)]
    with Store.open(tmp_path / "etika.db") as store:
        keystore = KeyStore(hsm_keystore.owner, StoreTokenRegistry(store))
        first = {pan: keystore.tokenise_pan(pan).token for pan in pans}
    assert len(set(first.values())) == len(pans)
    assert not any(luhn_valid(token) for token in first.values())
    with Store.open(tmp_path / "etika.db") as store:
        keystore = KeyStore(hsm_keystore.owner, StoreTokenRegistry(store))
        assert {pan: keystore.tokenise_pan(pan).token for pan in reversed(pans)} == first
        assert len(StoreTokenRegistry(store)) == len(pans)


def test_database_holds_no_clear_pan(hsm_keystore: KeyStore, tmp_path: Path) -> None:
    """After tokenising, neither the database nor its WAL contains the PAN's digits."""
    pan = "4761739001010119"
    with Store.open(tmp_path / "etika.db") as store:
        KeyStore(hsm_keystore.owner, StoreTokenRegistry(store)).tokenise(pan, "2712")
        written = b"".join(p.read_bytes() for p in tmp_path.glob("etika.db*"))
    assert pan.encode() not in written and pan[6:12].encode() not in written
