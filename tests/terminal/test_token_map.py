"""The store's fingerprint → token map (hsm.base.TokenRegistry on SQLite)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hsm.base import TokenRegistry
from terminal.store import Store
from terminal.store.token_map import StoreTokenRegistry

FP_A, FP_B, FP_C = "a" * 64, "b" * 64, "c" * 64


@pytest.fixture
def registry(tmp_path: Path) -> StoreTokenRegistry:
    return StoreTokenRegistry(Store.open(tmp_path / "etika.db"))


def test_is_a_token_registry(registry: StoreTokenRegistry) -> None:
    """The store's registry satisfies the Protocol hsm declares."""
    assert isinstance(registry, TokenRegistry)


def test_binds_first_free_candidate_and_remembers(registry: StoreTokenRegistry) -> None:
    """A new fingerprint takes the first free candidate; a known one gets its token back
    without consuming candidates; a collision moves to the next candidate."""
    assert registry.bind(FP_A, 1, ["4111110000001111", "4111110000011111"]) == "4111110000001111"
    assert registry.bind(FP_A, 1, iter(())) == "4111110000001111"
    assert registry.bind(FP_B, 1, ["4111110000001111", "4111110000011111"]) == "4111110000011111"
    assert registry.bind(FP_C, 1, ["4111110000001111", "4111110000011111"]) is None
    assert registry.token_of(FP_B, 1) == "4111110000011111"
    assert registry.fingerprint_of("4111110000011111") == (FP_B, 1)
    assert registry.token_of(FP_C, 1) is None and len(registry) == 2


def test_tokens_are_unique_across_key_versions(registry: StoreTokenRegistry) -> None:
    """The same fingerprint under a new key version cannot reuse a token bound under another."""
    assert registry.bind(FP_A, 1, ["4111110000001111"]) == "4111110000001111"
    assert registry.bind(FP_A, 2, ["4111110000001111", "4111110000021111"]) == "4111110000021111"


def test_survives_reopen(tmp_path: Path) -> None:
    """Bindings are durable: a reopened store returns the same token."""
    with Store.open(tmp_path / "etika.db") as store:
        StoreTokenRegistry(store).bind(FP_A, 1, ["4111110000001111"])
    with Store.open(tmp_path / "etika.db") as store:
        assert StoreTokenRegistry(store).bind(FP_A, 1, []) == "4111110000001111"


def test_concurrent_binds_of_one_fingerprint_agree(registry: StoreTokenRegistry) -> None:
    """Threads binding the same new fingerprint at once all get one token."""
    results: list[str | None] = []
    barrier = threading.Barrier(4)

    def bind(n: int) -> None:
        barrier.wait()
        results.append(registry.bind(FP_A, 1, [f"41111100000{n}1111", "4111110000991111"]))

    threads = [threading.Thread(target=bind, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(registry) == 1
