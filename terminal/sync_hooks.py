"""The terminal's side of fleet downlinks: :class:`edge_sync.downlink.DownlinkHooks` over the
store (log, blacklist, FX), the profile directory (atomic config swap) and two callbacks the
CLI provides (key rotation, diagnostics)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edge_sync.downlink import BlacklistUpdate, ConfigUpdate, CrlUpdate, FxUpdate
from edge_sync.errors import DownlinkRejectedError
from edge_sync.json_types import JsonObject
from edge_sync.messages import Downlink
from terminal.errors import ConfigError
from terminal.profile_crl import CRL_FILE, RevokedCertificate, read_crl, render_crl
from terminal.profile_swap import swap_in_profile
from terminal.store.fleet import FleetStore

__all__ = ["TerminalDownlinkHooks"]


def _no_rotation() -> JsonObject:
    raise DownlinkRejectedError(
        "key rotation is not available on this terminal (no key store wired)",
        reason="unsupported",
    )


class TerminalDownlinkHooks:
    def __init__(
        self,
        fleet: FleetStore,
        profile_dir: Path,
        *,
        rotate_keys: Callable[[], JsonObject] = _no_rotation,
        diagnostics: Callable[[], JsonObject] = dict,
        on_profile_applied: Callable[[], None] | None = None,
    ) -> None:
        self._fleet = fleet
        self._profile_dir = Path(profile_dir)
        self._rotate = rotate_keys
        self._diagnostics = diagnostics
        self._on_profile_applied = on_profile_applied

    def seen(self, message_id: str) -> bool:
        return self._fleet.seen(message_id)

    def record(self, downlink: Downlink, outcome: str, reason: str | None) -> None:
        self._fleet.record_downlink(
            downlink.message_id, downlink.kind, downlink.issued_at, outcome, reason, downlink.seq
        )

    def last_seq(self, kind: str) -> int:
        return self._fleet.last_downlink_seq(kind)

    def blacklist_version(self) -> int | None:
        value = self._fleet.version("blacklist")
        return None if value is None else int(value)

    def fx_as_of(self) -> str | None:
        return self._fleet.version("fx")

    def apply_config(self, update: ConfigUpdate) -> None:
        try:
            swap_in_profile(self._profile_dir, update.files)
        except ConfigError as exc:
            raise DownlinkRejectedError(
                f"profile version {update.version} does not validate: {exc}",
                reason="invalid profile",
            ) from exc
        except OSError as exc:
            raise DownlinkRejectedError(
                f"profile version {update.version} could not be written: {exc}",
                reason="write failed",
            ) from exc
        if self._on_profile_applied is not None:
            self._on_profile_applied()

    def store_blacklist(self, update: BlacklistUpdate) -> None:
        self._fleet.replace_blacklist(
            update.version, update.mode, [(e.type, e.value, e.reason) for e in update.entries]
        )

    def store_crl(self, update: CrlUpdate) -> None:
        """Merge the update into the profile's ``crl.toml`` and swap the profile in."""
        pushed = [RevokedCertificate(**entry.model_dump()) for entry in update.entries]
        try:
            current = set(read_crl(self._profile_dir))
        except ConfigError as exc:
            if update.mode != "replace":
                raise DownlinkRejectedError(
                    f"revocation list version {update.version}: the current crl.toml is "
                    f"broken, only a full replace can repair it: {exc}",
                    reason="invalid profile",
                ) from exc
            current = set()
        if update.mode == "replace":
            entries = set(pushed)
        elif update.mode == "add":
            entries = current | set(pushed)
        else:
            entries = current - set(pushed)
        self.apply_config(
            ConfigUpdate(
                version=f"crl-{update.version}",
                files={CRL_FILE: render_crl(entries, update.version)},
            )
        )

    def store_fx(self, update: FxUpdate) -> None:
        self._fleet.store_fx(update.base, update.as_of, update.rates)

    def rotate_keys(self) -> JsonObject:
        return self._rotate()

    def diagnostics(self) -> JsonObject:
        return self._diagnostics()
