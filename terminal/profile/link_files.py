"""The models of ``routing.toml`` (the PSP connectors and the routes that pick them) and
``sync.toml`` (the platform's MQTT and HTTPS endpoints, the PoP back end)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    model_validator,
)

from terminal.profile.endpoints import BaseUrl, HostName, LocalPath, WireText
from terminal.profile.fields import (
    Aid,
    CurrencyCode,
    MinorUnits,
    Network,
    PrintableText,
    StrictModel,
)

__all__ = [
    "PspConfig",
    "Route",
    "RoutingFile",
    "SyncConfig",
    "SyncFile",
    "is_loopback",
]


# --- routing.toml ------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (a simulator or a local relay), not a network peer."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class PspConfig(StrictModel):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    kind: Literal["iso8583", "stripe", "paypal"]
    host: HostName | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    url: BaseUrl | None = None
    acquirer_id: Annotated[str, Field(pattern=r"^[0-9]{1,11}$")] | None = None
    networks: list[Network]
    currencies: list[CurrencyCode]
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    tls: bool = False
    # Mutual TLS of an ISO 8583 link (PEM files, relative to the profile directory): the CA
    # that signs the host's certificate, and this terminal's client certificate and key.
    tls_ca_file: LocalPath | None = None
    tls_cert_file: LocalPath | None = None
    tls_key_file: LocalPath | None = None
    # ISO 8583 MAC (DE 64/128, AES-CMAC) under the key etika-psp-mac-<name> of the token.
    mac: bool = False
    p2pe_public_key: LocalPath | None = None  # PEM file, relative to the profile directory
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


BinPrefix = Annotated[str, Field(pattern=r"^[0-9]{6,8}$")]


class Route(StrictModel):
    name: Annotated[PrintableText, Field(min_length=1, max_length=64)]
    networks: list[Network] = Field(default_factory=list)
    aid_prefixes: list[Aid] = Field(default_factory=list)
    bin_ranges: list[tuple[BinPrefix, BinPrefix]] = Field(default_factory=list)
    currencies: list[CurrencyCode] = Field(default_factory=list)
    min_amount: MinorUnits | None = None
    max_amount: MinorUnits | None = None
    connectors: Annotated[list[str], Field(min_length=1)]

    @model_validator(mode="after")
    def _ranges_rise(self) -> Route:
        # The same padding as the router's match (low with 0s, high with 9s).
        for low, high in self.bin_ranges:
            if low.ljust(8, "0") > high.ljust(8, "9"):
                raise ValueError(f"bin range {low}-{high} is empty (low above high)")
        return self


class RoutingFile(StrictModel):
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


class SyncConfig(StrictModel):
    mqtt_host: HostName = "127.0.0.1"
    mqtt_port: Annotated[int, Field(ge=1, le=65535)] = 8883
    mqtt_tls: bool = True
    https_url: BaseUrl | None = None
    ca_file: LocalPath | None = None
    cert_file: LocalPath | None = None
    key_file: LocalPath | None = None
    platform_public_key: LocalPath | None = None  # PEM file, relative to the profile directory
    # Outbox worker pacing (edge_sync.worker.WorkerSettings).
    batch_size: Annotated[int, Field(ge=1, le=5000)] = 500
    max_in_flight: Annotated[int, Field(ge=1, le=100_000)] = 2000
    ack_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    # Metered links; bounded so the token bucket's float arithmetic cannot overflow.
    max_bytes_per_s: Annotated[int, Field(gt=0, le=10**12)] | None = None
    retry_base_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    retry_cap_s: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    max_attempts: Annotated[int, Field(ge=1, le=1_000_000)] | None = None  # None: until the TTL
    # Sign the audit journal's head at most this often while it moves (0: at end of day
    # only); terminal.store.checkpoints.checkpoint_if_due.
    journal_checkpoint_interval_s: Annotated[float, Field(ge=0, le=86_400)] = 900.0
    # The PoP back end (etika-pop-consensus): None means none is configured and every PoP
    # record waits in the outbox.
    pop_url: BaseUrl | None = None
    pop_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    # Sent in the PoP requests' signed headers: printable ASCII.
    pop_audience: Annotated[WireText, Field(min_length=1, max_length=64)] = "etika-pop-consensus"

    @model_validator(mode="after")
    def _encrypted_off_this_machine(self) -> SyncConfig:
        # Like the PSP links (issue #12 item 6): plain HTTP only to a simulator on this machine.
        for name in ("https_url", "pop_url"):
            url = getattr(self, name)
            if url is not None and not url.lower().startswith("https://") \
                    and not is_loopback(urlsplit(url).hostname or ""):
                raise ValueError(f"{name} {url} is not on this machine: use https://")
        return self


class SyncFile(StrictModel):
    sync: SyncConfig
