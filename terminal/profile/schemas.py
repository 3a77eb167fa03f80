"""The pydantic models of the profile's files, one per file, and the file → model table.

=================  ===============================================================
``terminal.toml``  identity, EMV terminal data (9F1C, 9F16, 9F15, 9F1A, 9F35, 9F33, 9F40),
                   the PKCS#11 module and the serial PIN pad (here)
``currencies.toml`` accepted ISO 4217 currencies, the default one, FX rates with age limits
                   (:mod:`~terminal.profile.money_files`)
``aids.toml``      supported applications: TACs, floor limits, random selection, TDOL/DDOL
                   (:mod:`~terminal.profile.emv_files`)
``capks.toml``     certification authority public keys, SHA-1 checksum verified at load
                   (:mod:`~terminal.profile.emv_files`)
``limits.toml``    offline approval limits; ``[fraud]`` fraud-scoring thresholds and weights
                   (:mod:`~terminal.profile.money_files`)
``routing.toml``   PSP connectors and the routes that pick them
                   (:mod:`~terminal.profile.link_files`)
``sync.toml``      MQTT / HTTPS endpoints of the platform (:mod:`~terminal.profile.link_files`)
=================  ===============================================================

Each model checks what can be checked inside its own file (formats, ranges, ISO 4217 codes,
CAPK checksums, duplicate entries) with the field types of :mod:`terminal.profile.fields`;
rules that span files live in :mod:`terminal.profile.checks`. Every model is re-exported
here.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
    field_validator,
)

from terminal.profile.emv_files import AidConfig, AidsFile, Capk, CapksFile
from terminal.profile.endpoints import LocalPath, WireText
from terminal.profile.fields import (
    Hex1,
    Hex3,
    Hex5,
    Network,
    StrictModel,
)
from terminal.profile.link_files import (
    PspConfig,
    Route,
    RoutingFile,
    SyncConfig,
    SyncFile,
    is_loopback,
)
from terminal.profile.money_files import (
    CurrenciesFile,
    CurrencyEntry,
    FraudSettings,
    FraudWeights,
    FxRateEntry,
    LimitsFile,
    OfflineLimits,
    PaymentsSettings,
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
    "PspConfig",
    "Route",
    "RoutingFile",
    "SyncConfig",
    "SyncFile",
    "TerminalConfig",
    "TerminalFile",
    "is_loopback",
]


# --- terminal.toml -----------------------------------------------------------------------


class TerminalConfig(StrictModel):
    terminal_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{8}$")]
    merchant_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9 ]{15}$")]
    merchant_name: Annotated[WireText, Field(min_length=1, max_length=40)]  # 9F4E, DE 43
    mcc: Annotated[str, Field(pattern=r"^[0-9]{4}$")]
    country_code: Annotated[int, Field(ge=1, le=999)]
    ifd_serial: Annotated[str, Field(pattern=r"^[\x20-\x7e]{8}$")]
    terminal_type: Hex1
    capabilities: Hex3
    additional_capabilities: Hex5
    #: The counter's language (``etika ui``, receipts): French by default.
    locale: Literal["fr", "en"] = "fr"

    @field_validator("terminal_type")
    @classmethod
    def _known_terminal_type(cls, value: str) -> str:
        # Book 4 Annex A1: tens digit 1-3 (operational control), units 1-6 (environment).
        if not re.fullmatch(r"[123][1-6]", value):
            raise ValueError("must be a terminal type of EMV Book 4 Annex A1 (11-16, 21-26, 31-36)")
        return value


class HsmConfig(StrictModel):
    pkcs11_module: LocalPath = "/usr/lib/softhsm/libsofthsm2.so"
    # The PKCS#11 token label: at most 32 bytes, so ASCII.
    token_label: Annotated[WireText, Field(min_length=1, max_length=32)] = "etika-terminal"  # noqa: S105


class PinPadConfig(StrictModel):
    """The serial PIN pad: its port (as pyserial opens it) and line speed."""

    port: LocalPath = "/dev/ttyUSB0"
    baud: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    pin_timeout_s: Annotated[float, Field(ge=5, le=300)] = 30.0


class PrinterConfig(StrictModel):
    """The ESC/POS receipt printer: its serial port (none: receipts are not printed)."""

    port: LocalPath | None = None
    baud: Literal[9600, 19200, 38400, 57600, 115200] = 19200


class TerminalFile(StrictModel):
    terminal: TerminalConfig
    hsm: HsmConfig = HsmConfig()
    pinpad: PinPadConfig = PinPadConfig()
    printer: PrinterConfig = PrinterConfig()


# --- the files of a profile --------------------------------------------------------------

#: Every file a profile directory holds, with the model that validates it.
PROFILE_FILES: dict[str, type[BaseModel]] = {
    "terminal.toml": TerminalFile,
    "currencies.toml": CurrenciesFile,
    "aids.toml": AidsFile,
    "capks.toml": CapksFile,
    "limits.toml": LimitsFile,
    "routing.toml": RoutingFile,
    "sync.toml": SyncFile,
}
