"""The terminal's services layer: the use cases the CLI and the UI share (DESIGN §2).

:class:`TerminalServices` is built from a profile and a data dir and hands out what a use
case needs: the store, the key store, card sessions, the PSP router with persistent STANs,
the sync. No command module or screen builds those itself.
"""

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
