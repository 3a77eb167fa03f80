"""The validated profile as one value: what :func:`terminal.profile.load_profile` returns."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from terminal.aid_match import match_aid
from terminal.errors import ConfigError
from terminal.money import CURRENCIES, Currency
from terminal.profile.schemas import (
    AidConfig,
    Capk,
    CurrenciesFile,
    FraudSettings,
    HsmConfig,
    Network,
    OfflineLimits,
    PaymentsSettings,
    PinPadConfig,
    PrinterConfig,
    PspConfig,
    Route,
    SyncConfig,
    TerminalConfig,
)
from terminal.profile_crl import RevokedCertificate

__all__ = ["Profile"]


class Profile(BaseModel):
    """A validated terminal profile; built only by :func:`load_profile`."""

    model_config = ConfigDict(frozen=True)

    directory: Path
    terminal: TerminalConfig
    hsm: HsmConfig
    pinpad: PinPadConfig
    printer: PrinterConfig = PrinterConfig()
    currencies: CurrenciesFile
    aids: list[AidConfig]
    capks: list[Capk]
    offline: OfflineLimits
    fraud: FraudSettings = FraudSettings()
    payments: PaymentsSettings = PaymentsSettings()
    psps: list[PspConfig]
    routes: list[Route]
    sync: SyncConfig
    #: Revoked issuer certificates from the optional ``crl.toml`` (:mod:`terminal.profile_crl`).
    revoked: list[RevokedCertificate] = []

    @property
    def default_currency(self) -> Currency:
        return CURRENCIES[self.currencies.default]

    def currency(self, code: str) -> Currency:
        """An accepted currency by code; ``ConfigError`` names the accepted ones otherwise."""
        accepted = self.currencies.currencies
        if code.upper() not in accepted:
            raise ConfigError(
                [f"currency {code!r} is not accepted by this terminal "
                 f"(accepted: {', '.join(accepted)})"]
            )
        return accepted[code.upper()]

    def aid_config(self, aid: bytes) -> AidConfig | None:
        """The ``aids.toml`` entry a card AID selects, by selection's own rule (or ``None``)."""
        return match_aid(aid, self.aids, aid=lambda a: bytes.fromhex(a.aid),
                         partial=lambda a: a.partial_match)

    def network_for_aid(self, aid: bytes) -> Network | None:
        """The card network of the application the kernel selected for ``aid``.

        The same rule as application selection (exact match before partial), so the PSP
        route follows the application the card is actually paying with.
        """
        entry = self.aid_config(aid)
        return entry.network if entry is not None else None
