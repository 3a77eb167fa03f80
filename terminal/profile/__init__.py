"""Terminal profiles: the TOML files of a ``firmware-config/<name>/`` directory, validated.

A profile is one directory of files, each validated by its own pydantic model:

=================  ===============================================================
``terminal.toml``  identity, EMV terminal data (9F1C, 9F16, 9F15, 9F1A, 9F35, 9F33, 9F40),
                   the PKCS#11 module and the serial PIN pad
``currencies.toml`` accepted ISO 4217 currencies, the default one, FX rates with age limits
``aids.toml``      supported applications: TACs, floor limits, random selection, TDOL/DDOL
``capks.toml``     certification authority public keys, SHA-1 checksum verified at load
``limits.toml``    offline approval limits; ``[fraud]`` fraud-scoring thresholds and weights
``routing.toml``   PSP connectors and the routes that pick them
``sync.toml``      MQTT / HTTPS endpoints of the platform
=================  ===============================================================

:func:`load_profile` reads them all and raises one :class:`~terminal.errors.ConfigError`
listing every problem as ``path/file:key: reason`` — a broken profile never starts the terminal.
Only ``terminal`` reads profiles; the other packages receive these values.

The package splits by job: :mod:`~terminal.profile.schemas` (one model per file),
:mod:`~terminal.profile.loading` (reading and validating a directory),
:mod:`~terminal.profile.checks` (rules across files), :mod:`~terminal.profile.model` (the
:class:`Profile` value) and :mod:`~terminal.aid_match` (card AID → application, the
rule selection and routing share).
"""

from terminal.profile.loading import load_profile
from terminal.profile.model import Profile
from terminal.profile.schemas import (
    PROFILE_FILES,
    AidConfig,
    AidsFile,
    Capk,
    CapksFile,
    CurrenciesFile,
    CurrencyEntry,
    FraudSettings,
    FraudWeights,
    FxRateEntry,
    HsmConfig,
    LimitsFile,
    Network,
    OfflineLimits,
    PaymentsSettings,
    PinPadConfig,
    PrinterConfig,
    PspConfig,
    Route,
    RoutingFile,
    SyncConfig,
    SyncFile,
    TerminalConfig,
    TerminalFile,
    is_loopback,
)

__all__ = [
    "PROFILE_FILES",
    "AidConfig",
    "AidsFile",
    "Capk",
    "CapksFile",
    "CurrenciesFile",
    "CurrencyEntry",
    "FraudSettings",
    "FraudWeights",
    "FxRateEntry",
    "HsmConfig",
    "LimitsFile",
    "Network",
    "OfflineLimits",
    "PaymentsSettings",
    "PinPadConfig",
    "PrinterConfig",
    "Profile",
    "PspConfig",
    "Route",
    "RoutingFile",
    "SyncConfig",
    "SyncFile",
    "TerminalConfig",
    "TerminalFile",
    "is_loopback",
    "load_profile",
]
