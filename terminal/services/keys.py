"""Where the terminal's key store is and how it is opened (one place for CLI, UI, services).

The module path comes from ``--module``, then ``ETIKA_PKCS11_MODULE``, then the profile's
``[hsm] pkcs11_module``; the token label from the profile; the token itself lives under the
data dir (SoftHSM2 in development, a real HSM's module in the field).
"""

from __future__ import annotations

import os
from pathlib import Path

from hsm import HsmSettings, KeyStore
from terminal.profile import Profile
from terminal.store import Store
from terminal.store.token_map import StoreTokenRegistry

__all__ = ["hsm_settings_for", "open_key_store"]


def hsm_settings_for(profile: Profile | None, data_dir: Path,
                     module: str | None = None) -> HsmSettings:
    """The key store's settings for this profile and data dir.

    ``profile`` may be ``None`` when it cannot be loaded but ``module`` names the PKCS#11
    module explicitly (``etika hsm status --module …`` on a terminal with a broken profile).
    """
    module = module or os.environ.get("ETIKA_PKCS11_MODULE")
    if profile is not None:
        module = module or profile.hsm.pkcs11_module
    settings = HsmSettings.from_data_dir(data_dir, module=module)
    if profile is None:
        return settings
    return HsmSettings(data_dir=settings.data_dir, module=settings.module,
                       token_label=profile.hsm.token_label)


def open_key_store(settings: HsmSettings, store: Store | None = None) -> KeyStore:
    """The key store, tokenising through ``store``'s token map when one is given."""
    registry = StoreTokenRegistry(store) if store is not None else None
    return KeyStore.open(settings, registry)
