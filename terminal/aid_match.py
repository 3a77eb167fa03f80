"""The one rule that maps a card's AID to a terminal-supported application.

EMV Book 1 §12.3.1: the terminal's AID matches the card's ADF name exactly, or — when the
terminal allows partial selection for it — as a prefix of a longer ADF name. An exact match
wins over a partial one wherever the two appear in the terminal's list, so that a short
partial entry (``A000000003``) never shadows a specific one (``A0000000031010``) listed after
it. Selection (:mod:`terminal.emv.selection`) and routing (:meth:`Profile.network_for_aid`)
both use this function, so the application the kernel selected and the network the PSP route
is chosen by can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["match_aid"]

T = TypeVar("T")


def match_aid(card_aid: bytes, entries: Sequence[T], *, aid: Callable[[T], bytes],
              partial: Callable[[T], bool]) -> T | None:
    """The entry of ``entries`` the card AID matches: exact first, then by allowed prefix."""
    for entry in entries:
        if card_aid == aid(entry):
            return entry
    for entry in entries:
        if partial(entry) and card_aid.startswith(aid(entry)):
            return entry
    return None
