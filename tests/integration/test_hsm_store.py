"""The key store tokenising against the terminal's SQLite token map, on a real token."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hsm import HsmSettings, KeyStore, luhn_valid
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


def test_threads_through_the_store_registry_agree(hsm_keystore: KeyStore,
                                                  tmp_path: Path) -> None:
    """4 threads tokenising the same 200 colliding-prone PANs through one store-backed key
    store get one token per PAN, all distinct, equal to a single-threaded run."""
    pans = [pan_with_middle("476173", f"{p:02d}0", "0119") for p in range(100)]
    pans += [pan_with_middle("535110", f"{p:02d}0", "0027") for p in range(100)]
    with Store.open(tmp_path / "single.db") as store:
        single = KeyStore(hsm_keystore.owner, StoreTokenRegistry(store))
        expected = {pan: single.tokenise_pan(pan).token for pan in pans}
    results: list[dict[str, str]] = [{} for _ in range(4)]
    with Store.open(tmp_path / "shared.db") as store:
        shared = KeyStore(hsm_keystore.owner, StoreTokenRegistry(store))

        def work(n: int) -> None:
            for pan in pans:
                results[n][pan] = shared.tokenise_pan(pan).token

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert all(result == expected for result in results)
    assert len(set(expected.values())) == len(pans)


def test_cli_wiring_opens_the_store_backed_key_store(
    hsm_keystore: KeyStore, hsm_settings: HsmSettings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """open_key_store(ctx, store) takes the profile's token label and the store's token map."""
    from terminal.cli.cmd_hsm import hsm_settings as settings_for
    from terminal.cli.cmd_hsm import open_key_store
    from terminal.cli.context import CliContext

    monkeypatch.setenv("ETIKA_HSM_PIN", hsm_settings.pin())
    ctx = CliContext(profile_name="default", data_dir=tmp_path)
    assert settings_for(ctx).token_label == "etika-terminal"
    assert settings_for(ctx, "/x/lib.so").module == "/x/lib.so"
    with Store.open(tmp_path / "etika.db") as store, open_key_store(ctx, store) as keystore:
        token = keystore.tokenise_pan("4761739001010119").token
        assert StoreTokenRegistry(store).fingerprint_of(token) is not None
