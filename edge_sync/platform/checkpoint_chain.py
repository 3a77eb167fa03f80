"""How a terminal's signed journal checkpoints link, checked in whatever order they arrive.

Each checkpoint signs a journal entry and names the previous checkpoint's entry and that
entry's hash as the terminal's journal held them when signing. The platform keeps every
verified checkpoint (signed by the terminal's key: authentic even when its predecessor has
not arrived yet — two platform workers on the shared subscription, or a resend, deliver
out of order) and checks the links between stored neighbours:

- a checkpoint whose predecessor is stored must name that predecessor's hash;
- a stored successor that names this entry must name this entry's hash;
- a checkpoint may not jump over a stored one (its predecessor is older than a stored
  checkpoint below it), nor sit inside a stored successor's link: the terminal's record of
  its checkpoints then differs from what it sent before — the journal was rewritten;
- a gap (the predecessor not received yet) is accepted and checked when it fills;
- the same entry sent again in another message is a replay, refused.

A journal truncated or rewritten on the terminal therefore still breaks a link, whichever
side of the cut arrives first; only the order no longer matters.
"""

from __future__ import annotations

from edge_sync.platform.records import StoredCheckpoint

__all__ = ["link_problem", "neighbours"]

_CUT = "the terminal's audit journal was truncated or rewritten in between"


def neighbours(
    entry_id: int, candidates: list[StoredCheckpoint]
) -> tuple[StoredCheckpoint | None, StoredCheckpoint | None, StoredCheckpoint | None]:
    """The closest of ``candidates`` below ``entry_id``, at it, and above it."""
    below = max((c for c in candidates if c.entry_id < entry_id),
                key=lambda c: c.entry_id, default=None)
    same = next((c for c in candidates if c.entry_id == entry_id), None)
    above = min((c for c in candidates if c.entry_id > entry_id),
                key=lambda c: c.entry_id, default=None)
    return below, same, above


def link_problem(new: StoredCheckpoint, below: StoredCheckpoint | None,
                 same: StoredCheckpoint | None, above: StoredCheckpoint | None) -> str | None:
    """Why ``new`` does not fit between the stored checkpoints around it, or ``None``."""
    entry = new.entry_id
    if same is not None:
        if same.message_id == new.message_id:
            # The same message again: the storage answers "duplicate", or refuses a reused
            # id when its content differs.
            return None
        return (f"journal checkpoint of entry {entry} does not link: a checkpoint of that "
                f"entry was already received (message {same.message_id}); a replayed or "
                f"re-signed one is refused" + ("" if same.entry_hash == new.entry_hash
                                               else f", and its hash differs: {_CUT}"))
    prev = new.prev_entry_id
    if prev is not None and prev > 0 and new.prev_entry_hash is None:
        return (f"journal checkpoint of entry {entry} does not link: the terminal's journal "
                f"no longer holds entry {prev} of its previous checkpoint: {_CUT}")
    if below is not None and prev is not None:
        if prev < below.entry_id or (prev == below.entry_id
                                     and new.prev_entry_hash != below.entry_hash):
            return (f"journal checkpoint of entry {entry} does not link to the one received "
                    f"before it (entry {below.entry_id}): {_CUT}")
    if above is not None and above.prev_entry_id is not None:
        if above.prev_entry_id < entry or (above.prev_entry_id == entry
                                           and above.prev_entry_hash != new.entry_hash):
            return (f"journal checkpoint of entry {entry} does not link to the one received "
                    f"after it (entry {above.entry_id}): {_CUT}")
    return None
