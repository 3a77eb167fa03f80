"""The terminal's services layer: the use cases the CLI and the UI share (DESIGN §2).

:class:`TerminalServices` is built from a profile and a data dir and hands out what a use
case needs: the store, the key store, card sessions, the PSP router with persistent STANs,
the sync. No command module or screen builds those itself.

The names below are loaded on first use, so that a command needing one part (``etika hsm
status`` needs only :mod:`terminal.services.keys`) does not import the PSP connectors, the
sync and the payments with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from terminal.services.cards import aid_chooser, card_session, run_card_job
    from terminal.services.facade import KeyStoreSigningKeys, TerminalServices
    from terminal.services.keys import hsm_settings_for, open_key_store
    from terminal.services.psp import (
        ProfilePspAuthoriser,
        build_persistent_router,
        network_for_aid,
        queue_reversal,
    )
    from terminal.services.sync import SigningKeys, SyncOptions, SyncService

__all__ = [
    "KeyStoreSigningKeys",
    "ProfilePspAuthoriser",
    "SigningKeys",
    "SyncOptions",
    "SyncService",
    "TerminalServices",
    "aid_chooser",
    "build_persistent_router",
    "card_session",
    "hsm_settings_for",
    "network_for_aid",
    "open_key_store",
    "queue_reversal",
    "run_card_job",
]

_HOME = {
    "aid_chooser": "cards", "card_session": "cards", "run_card_job": "cards",
    "KeyStoreSigningKeys": "facade", "TerminalServices": "facade",
    "hsm_settings_for": "keys", "open_key_store": "keys",
    "ProfilePspAuthoriser": "psp", "build_persistent_router": "psp",
    "network_for_aid": "psp", "queue_reversal": "psp",
    "SigningKeys": "sync", "SyncOptions": "sync", "SyncService": "sync",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"terminal.services.{home}"), name)
    globals()[name] = value
    return value
