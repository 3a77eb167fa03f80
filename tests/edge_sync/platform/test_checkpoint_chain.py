"""The link rules between stored journal checkpoints, in any arrival order (unit)."""

from __future__ import annotations

from edge_sync.platform.checkpoint_chain import link_problem, neighbours
from edge_sync.platform.records import StoredCheckpoint

H = {n: f"{n:064x}" for n in range(100)}


def cp(entry: int, prev: int, prev_hash: str | None = None, mid: str = "") -> StoredCheckpoint:
    return StoredCheckpoint(entry, H[entry], prev, H[prev] if prev_hash is None else prev_hash,
                            "2026-12-03T00:00:00.000Z", mid or f"m{entry}")


def problem(new: StoredCheckpoint, stored: list[StoredCheckpoint]) -> str | None:
    return link_problem(new, *neighbours(new.entry_id, stored))


def test_any_order_of_an_honest_chain_links() -> None:
    """An honest chain links whatever order its checkpoints arrive in."""
    chain = [cp(5, 0), cp(9, 5), cp(14, 9), cp(20, 14)]
    for order in ([3, 2, 1, 0], [1, 3, 0, 2], [0, 1, 2, 3]):
        stored: list[StoredCheckpoint] = []
        for i in order:
            assert problem(chain[i], stored) is None
            stored.append(chain[i])


def test_a_broken_link_is_refused_from_either_side() -> None:
    """A rewritten predecessor hash is caught whichever of the two arrives first."""
    rewritten = cp(9, 5, prev_hash="f" * 64)  # entry 5 no longer has its signed hash
    assert "truncated or rewritten" in (problem(rewritten, [cp(5, 0)]) or "")
    assert "truncated or rewritten" in (problem(cp(5, 0), [rewritten]) or "")


def test_jumping_over_or_inside_a_stored_link_is_refused() -> None:
    """A checkpoint may not skip a stored one, sit inside a stored link, or restart."""
    assert "received before" in (problem(cp(14, 5), [cp(5, 0), cp(9, 5)]) or "")
    assert "received after" in (problem(cp(7, 5), [cp(5, 0), cp(9, 5)]) or "")
    assert "received before" in (problem(cp(3, 0), [cp(1, 0)]) or "")  # a wiped journal


def test_a_replay_is_refused_and_the_same_message_is_not() -> None:
    """The same entry in a new message is a replay; the very same message is a duplicate."""
    first = cp(5, 0)
    assert problem(first, [first]) is None  # the very message: storage says duplicate
    assert "already received" in (problem(cp(5, 0, mid="other"), [first]) or "")


def test_a_missing_predecessor_entry_on_the_terminal_is_refused() -> None:
    """A checkpoint whose terminal no longer holds its predecessor entry is refused."""
    gone = StoredCheckpoint(9, H[9], 5, None, "2026-12-03T00:00:00.000Z", "m9")
    assert "no longer holds entry 5" in (problem(gone, []) or "")


def test_the_same_message_again_is_left_to_the_storage_even_when_its_link_was_not_kept() -> None:
    """A checkpoint carried over from the newest-checkpoint table (no link kept) and sent
    again in its own message is not a replay: the storage answers it as a duplicate."""
    carried = StoredCheckpoint(5, H[5], None, None, "2026-12-03T00:00:00.000Z", "m5")
    assert problem(cp(5, 0), [carried]) is None
    assert "already received" in (problem(cp(5, 0, mid="other"), [carried]) or "")
