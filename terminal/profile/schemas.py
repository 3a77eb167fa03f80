"""The pydantic models of the profile's files, one per file, and the file → model table.

=========  ===============================================================
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
=======
Each model checks what can be checked inside its own file (formats, ranges, ISO 4217 codes,
CAPK checksums, duplicate entries); rules that span files live in
:mod:`terminal.profile.checks`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from terminal.money import CURRENCIES, Currency, FxRate

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


def _hex(nbytes: int | None = None) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", value):
            raise ValueError("must be an even number of hexadecimal digits")
        if nbytes is not None and len(value) != 2 * nbytes:
            raise ValueError(f"must be {nbytes} bytes ({2 * nbytes} hex digits)")
        return value.upper()

    return check


def _hex_range(low: int, high: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        value = _hex()(value)
        if not low <= len(value) // 2 <= high:
            raise ValueError(f"must be {low} to {high} bytes")
        return value

    return check


Hex1 = Annotated[str, AfterValidator(_hex(1))]
Hex2 = Annotated[str, AfterValidator(_hex(2))]
Hex3 = Annotated[str, AfterValidator(_hex(3))]
Hex5 = Annotated[str, AfterValidator(_hex(5))]
HexAny = Annotated[str, AfterValidator(_hex())]
Aid = Annotated[str, AfterValidator(_hex_range(5, 16))]
MinorUnits = Annotated[int, Field(ge=0, le=999_999_999_999)]
Percent = Annotated[int, Field(ge=0, le=99)]


def _currency_code(value: str) -> str:
    if value not in CURRENCIES:
        raise ValueError(f"unknown ISO 4217 currency {value!r}")
    return value


CurrencyCode = Annotated[str, AfterValidator(_currency_code)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- terminal.toml -----------------------------------------------------------------------


class TerminalConfig(_Strict):
    terminal_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{8}$")]
    merchant_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9 ]{15}$")]
    merchant_name: Annotated[str, Field(min_length=1, max_length=40)]
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


class HsmConfig(_Strict):
    pkcs11_module: str = "/usr/lib/softhsm/libsofthsm2.so"
    token_label: Annotated[str, Field(min_length=1, max_length=32)] = "etika-terminal"  # noqa: S105


class PinPadConfig(_Strict):
    """The serial PIN pad: its port (as pyserial opens it) and line speed."""

    port: Annotated[str, Field(min_length=1)] = "/dev/ttyUSB0"
    baud: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    pin_timeout_s: Annotated[float, Field(ge=5, le=300)] = 30.0


class PrinterConfig(_Strict):
    """The ESC/POS receipt printer: its serial port (none: receipts are not printed)."""

    port: Annotated[str, Field(min_length=1)] | None = None
    baud: Literal[9600, 19200, 38400, 57600, 115200] = 19200


class TerminalFile(_Strict):
    terminal: TerminalConfig
    hsm: HsmConfig = HsmConfig()
    pinpad: PinPadConfig = PinPadConfig()
    printer: PrinterConfig = PrinterConfig()


# --- currencies.toml ---------------------------------------------------------------------


class CurrencyEntry(_Strict):
    code: CurrencyCode
    numeric: Annotated[int, Field(ge=1, le=999)]
    exponent: Annotated[int, Field(ge=0, le=4)]

    @model_validator(mode="after")
    def _matches_iso4217(self) -> CurrencyEntry:
        iso = CURRENCIES[self.code]
        if (self.numeric, self.exponent) != (iso.numeric, iso.exponent):
            raise ValueError(
                f"{self.code} is numeric {iso.numeric} with exponent {iso.exponent} in ISO 4217"
            )
        return self


_TEN_YEARS_S = 10 * 366 * 86400
_EARLIEST_AS_OF = datetime(2000, 1, 2)
_LATEST_AS_OF = datetime(2999, 12, 30)


class FxRateEntry(_Strict):
    base: CurrencyCode
    quote: CurrencyCode
    rate: Decimal = Field(gt=0)
    as_of: datetime
    max_age_s: Annotated[int, Field(gt=0, le=_TEN_YEARS_S)]

    @field_validator("rate", mode="before")
    @classmethod
    def _rate_is_text(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError('write the rate as a string ("10.8350") so no precision is lost')
        return value

    @field_validator("as_of")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a timezone, e.g. 2026-11-22T06:00:00Z")
        # Near year 1 or 9999 the conversion to UTC and age arithmetic overflow (issue #17
        # item 10); a rate is from this era.
        if not _EARLIEST_AS_OF <= value.replace(tzinfo=None) <= _LATEST_AS_OF:
            raise ValueError("must be a date between 2000 and 2999")
        return value

    def to_rate(self) -> FxRate:
        return FxRate(
            base=CURRENCIES[self.base],
            quote=CURRENCIES[self.quote],
            rate=self.rate,
            as_of=self.as_of.astimezone(UTC),
            max_age=timedelta(seconds=self.max_age_s),
        )


class CurrenciesFile(_Strict):
    default: CurrencyCode
    currency: Annotated[list[CurrencyEntry], Field(min_length=1)]
    fx_rate: list[FxRateEntry] = []

    @model_validator(mode="after")
    def _consistent(self) -> CurrenciesFile:
        codes = [c.code for c in self.currency]
        if len(set(codes)) != len(codes):
            raise ValueError("a currency is listed twice")
        if self.default not in codes:
            raise ValueError(f"default currency {self.default} is not in the currency list")
        for rate in self.fx_rate:
            for code in (rate.base, rate.quote):
                if code not in codes:
                    raise ValueError(f"FX rate {rate.base}/{rate.quote} uses unlisted {code}")
        return self

    @property
    def currencies(self) -> dict[str, Currency]:
        return {c.code: CURRENCIES[c.code] for c in self.currency}

    def rates(self) -> list[FxRate]:
        return [r.to_rate() for r in self.fx_rate]


# --- aids.toml ---------------------------------------------------------------------------

Network = Literal["visa", "mastercard", "cb", "bancontact", "domestic", "amex", "jcb"]


class AidConfig(_Strict):
    name: Annotated[str, Field(min_length=1)]
    network: Network
    aid: Aid
    label: Annotated[str, Field(min_length=1, max_length=16)]
    partial_match: bool = True
    application_version: Hex2
    tac_denial: Hex5
    tac_online: Hex5
    tac_default: Hex5
    floor_limit: MinorUnits
    random_selection_threshold: MinorUnits
    target_percent: Percent
    max_target_percent: Percent
    default_tdol: HexAny
    default_ddol: HexAny
    contactless: bool = False
    # Contactless reader limits (EMV Book A §5.7; Visa qVSDC), minor units of the default
    # currency: above the transaction limit contactless is refused, above the CVM limit a
    # CVM is required, above the floor limit the payment goes online.
    cl_transaction_limit: MinorUnits | None = None
    cl_floor_limit: MinorUnits | None = None
    cl_cvm_limit: MinorUnits = 30000
    priority: Annotated[int, Field(ge=0, le=15)] = 0

    @model_validator(mode="after")
    def _random_selection(self) -> AidConfig:
        # Book 3 §10.6.2: the threshold is below the floor limit and the target below its max.
        if self.random_selection_threshold > self.floor_limit:
            raise ValueError("random_selection_threshold must not exceed floor_limit")
        if self.target_percent > self.max_target_percent:
            raise ValueError("target_percent must not exceed max_target_percent")
        if self.cl_transaction_limit is not None and self.cl_cvm_limit > self.cl_transaction_limit:
            raise ValueError("cl_cvm_limit must not exceed cl_transaction_limit")
        return self

    @property
    def rid(self) -> str:
        return self.aid[:10]


class AidsFile(_Strict):
    aid: Annotated[list[AidConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> AidsFile:
        for attr in ("name", "aid"):
            values = [getattr(a, attr) for a in self.aid]
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"{attr} listed twice: {', '.join(dupes)}")
        return self


# --- capks.toml --------------------------------------------------------------------------


class Capk(_Strict):
    rid: Hex5
    index: Hex1
    modulus: Annotated[str, AfterValidator(_hex_range(64, 248))]
    exponent: Annotated[str, Field(pattern=r"^(03|010001)$")]
    expiry: date
    checksum: Annotated[str, AfterValidator(_hex(20))]

    @model_validator(mode="after")
    def _checksum(self) -> Capk:
        # Book 2 Annex B2.1 / §11.2: SHA-1 over RID || index || modulus || exponent.
        digest = hashlib.sha1(
            bytes.fromhex(self.rid + self.index + self.modulus + self.exponent),
            usedforsecurity=False,  # EMV's own checksum algorithm, not our choice
        ).hexdigest()
        if digest.upper() != self.checksum:
            raise ValueError(
                f"checksum does not match the key (SHA-1 of RID||index||modulus||exponent "
                f"is {digest.upper()}): the key was altered or mistyped"
            )
        return self

    @property
    def modulus_int(self) -> int:
        return int(self.modulus, 16)

    @property
    def exponent_int(self) -> int:
        return int(self.exponent, 16)


class CapksFile(_Strict):
    capk: Annotated[list[Capk], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> CapksFile:
        keys = [(c.rid, c.index) for c in self.capk]
        if len(set(keys)) != len(keys):
            raise ValueError("a (rid, index) pair is listed twice")
        return self


# --- limits.toml -------------------------------------------------------------------------


class OfflineLimits(_Strict):
    max_count: Annotated[int, Field(ge=0, le=1_000_000)]
    max_age_s: Annotated[int, Field(gt=0, le=_TEN_YEARS_S)]
    max_per_transaction: dict[CurrencyCode, MinorUnits]
    max_cumulative: dict[CurrencyCode, MinorUnits]

    @model_validator(mode="after")
    def _per_transaction_within_cumulative(self) -> OfflineLimits:
        for code, limit in self.max_per_transaction.items():
            total = self.max_cumulative.get(code)
            if total is None:
                raise ValueError(f"max_cumulative has no limit for {code}")
            if limit > total:
                raise ValueError(f"{code}: max_per_transaction exceeds max_cumulative")
        return self


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class FraudWeights(_Strict):
    """How much each check can add to the fraud score (0 = ignored, 1 = decisive alone)."""

    velocity: Fraction = 0.5
    amount: Fraction = 0.4
    blacklist: Fraction = 1.0
    bin_range: Fraction = 1.0
    country: Fraction = 0.2
    offline_exposure: Fraction = 0.3
    declines: Fraction = 0.5


class FraudSettings(_Strict):
    """``limits.toml`` ``[fraud]``: thresholds of :mod:`terminal.payments.fraud`.

    Every field has a default so profiles written before fraud scoring still load.
    """

    enabled: bool = True
    #: How far back the payment manager counts a card's transactions and declines.
    velocity_window_s: Annotated[int, Field(gt=0, le=30 * 86400)] = 3600
    #: Transactions of one card fingerprint within the window that make velocity fully risky.
    velocity_max_count: Annotated[int, Field(ge=1, le=10_000)] = 5
    #: Declines of one card within the window that make the decline check fully risky.
    max_declines: Annotated[int, Field(ge=1, le=1000)] = 3
    #: Amount check: the merchant's history needs this many payments before it counts.
    amount_min_history: Annotated[int, Field(ge=1)] = 20
    #: Standard deviations above the merchant's mean where the amount starts / is fully risky.
    amount_z_start: Annotated[float, Field(ge=0, le=100)] = 2.0
    amount_z_full: Annotated[float, Field(gt=0, le=100)] = 6.0
    #: Score thresholds of the levels and the decisions (0..1, rising).
    level_medium: Fraction = 0.30
    level_high: Fraction = 0.60
    level_critical: Fraction = 0.85
    review_at: Fraction = 0.50
    decline_at: Fraction = 0.80
    weights: FraudWeights = FraudWeights()

    @model_validator(mode="after")
    def _thresholds_rise(self) -> FraudSettings:
        if not self.level_medium <= self.level_high <= self.level_critical:
            raise ValueError("level_medium <= level_high <= level_critical must hold")
        if not self.review_at <= self.decline_at:
            raise ValueError("review_at must not exceed decline_at")
        if self.amount_z_start >= self.amount_z_full:
            raise ValueError("amount_z_start must be below amount_z_full")
        return self


class PaymentsSettings(_Strict):
    """``limits.toml`` ``[payments]``: how long a dual transaction may take (seed 001 §2.3)."""

    #: One deadline for the financial authorisation and the PoP submission together.
    deadline_ms: Annotated[int, Field(ge=100, le=60_000)] = 2000
    #: How long the cashier waits for a card to be presented.
    card_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0


class LimitsFile(_Strict):
    offline: OfflineLimits
    fraud: FraudSettings = FraudSettings()
    payments: PaymentsSettings = PaymentsSettings()


# --- routing.toml ------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (a simulator or a local relay), not a network peer."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _psp_url(value: str) -> str:
    # Checked here so a URL such as "http://[::1" is a profile error with its file:key, not a
    # traceback in the middle of a payment (issue #17 item 10).
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (use the connector's credentials file)")
    if not value.isascii() or any(c.isspace() for c in value):
        raise ValueError("must be plain ASCII without spaces")
    return value


PspUrl = Annotated[str, AfterValidator(_psp_url)]


class PspConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    kind: Literal["iso8583", "stripe", "paypal"]
    host: Annotated[str, Field(pattern=r"^[A-Za-z0-9.:\[\]-]{1,253}$")] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    url: PspUrl | None = None
    acquirer_id: Annotated[str, Field(pattern=r"^[0-9]{1,11}$")] | None = None
    networks: list[Network]
    currencies: list[CurrencyCode]
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    tls: bool = False
    # Mutual TLS of an ISO 8583 link (PEM files, relative to the profile directory): the CA
    # that signs the host's certificate, and this terminal's client certificate and key.
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # ISO 8583 MAC (DE 64/128, AES-CMAC) under the key etika-psp-mac-<name> of the token.
    mac: bool = False
    p2pe_public_key: str | None = None  # PEM file, relative to the profile directory
    # Circuit breaker: open after this many failures within the window, probe after reset.
    breaker_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    breaker_window_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    breaker_reset_s: Annotated[float, Field(gt=0, le=3600)] = 15.0

    @model_validator(mode="after")
    def _endpoint(self) -> PspConfig:
        if self.kind == "iso8583" and (self.host is None or self.port is None):
            raise ValueError("an iso8583 connector needs host and port")
        if self.kind != "iso8583" and self.url is None:
            raise ValueError(f"a {self.kind} connector needs url")
        if self.kind != "iso8583" and self.mac:
            raise ValueError("mac applies to iso8583 connectors only")
        return self

    @model_validator(mode="after")
    def _encrypted_off_this_machine(self) -> PspConfig:
        # Issue #12 item 6: card data envelopes, PIN blocks and credentials never cross a
        # network in the clear. Loopback stays open for the simulators.
        if self.kind == "iso8583" and self.host is not None and not is_loopback(self.host):
            if not self.tls:
                raise ValueError(f"iso8583 host {self.host} is not on this machine: set "
                                 "tls = true (mutual TLS)")
            if not (self.tls_cert_file and self.tls_key_file):
                raise ValueError(f"iso8583 host {self.host} needs mutual TLS: set "
                                 "tls_cert_file and tls_key_file (the terminal's client "
                                 "certificate)")
            if not self.mac:
                raise ValueError(f"iso8583 host {self.host} needs message authentication: "
                                 "set mac = true (DE 64/128 under the token's "
                                 f"etika-psp-mac-{self.name} key)")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
                raise ValueError(f"{self.url} is not on this machine: use https://")
        return self

    @property
    def loopback(self) -> bool:
        """Whether the PSP runs on this machine (a simulator)."""
        host = self.host if self.kind == "iso8583" else urlsplit(self.url or "").hostname
        return is_loopback(host or "")


class Route(_Strict):
    name: Annotated[str, Field(min_length=1)]
    networks: list[Network] = []
    aid_prefixes: list[Aid] = []
    bin_ranges: list[tuple[Annotated[str, Field(pattern=r"^[0-9]{6,8}$")], str]] = []
    currencies: list[CurrencyCode] = []
    min_amount: MinorUnits | None = None
    max_amount: MinorUnits | None = None
    connectors: Annotated[list[str], Field(min_length=1)]


class RoutingFile(_Strict):
    psp: Annotated[list[PspConfig], Field(min_length=1)]
    route: Annotated[list[Route], Field(min_length=1)]

    @model_validator(mode="after")
    def _routes_name_known_connectors(self) -> RoutingFile:
        names = {p.name for p in self.psp}
        for route in self.route:
            unknown = [c for c in route.connectors if c not in names]
            if unknown:
                raise ValueError(f"route {route.name!r} names unknown connector(s) {unknown}")
        return self


# --- sync.toml ---------------------------------------------------------------------------


class SyncConfig(_Strict):
    mqtt_host: str = "127.0.0.1"
    mqtt_port: Annotated[int, Field(ge=1, le=65535)] = 8883
    mqtt_tls: bool = True
    https_url: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    platform_public_key: str | None = None  # PEM file, relative to the profile directory
    # Outbox worker pacing (edge_sync.worker.WorkerSettings).
    batch_size: Annotated[int, Field(ge=1, le=5000)] = 500
    max_in_flight: Annotated[int, Field(ge=1, le=100_000)] = 2000
    ack_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    max_bytes_per_s: Annotated[int, Field(gt=0)] | None = None  # metered links
    retry_base_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    retry_cap_s: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    max_attempts: Annotated[int, Field(ge=1)] | None = None  # None: retry until the TTL
    # Sign the audit journal's head at most this often while it moves (0: at end of day
    # only); terminal.store.checkpoints.checkpoint_if_due.
    journal_checkpoint_interval_s: Annotated[float, Field(ge=0, le=86_400)] = 900.0
    # The PoP back end (etika-pop-consensus): None means none is configured and every PoP
    # record waits in the outbox.
    pop_url: str | None = None
    pop_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    pop_audience: Annotated[str, Field(min_length=1, max_length=64)] = "etika-pop-consensus"


class SyncFile(_Strict):
    sync: SyncConfig


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
