"""The profile's ``[[psp]]`` and ``[[route]]`` entries → live connectors and a router.

Only ``terminal`` reads profiles; :mod:`edge_sync.connectors` receives values. This module
is that hand-over: one connector per ``[[psp]]`` (ISO 8583 host, Stripe-like or
PayPal-like gateway), its P2PE public key read from the profile directory, its circuit
breaker settings, and the routes as :class:`~edge_sync.connectors.routing.RouteRule`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

from edge_sync.connectors import (
    BreakerSettings,
    Connector,
    ConnectorScope,
    HostContext,
    Iso8583Connector,
    Iso8583Settings,
    PayPalConnector,
    RestSettings,
    Router,
    RouteRule,
    StanSource,
    StripeConnector,
)
from terminal.errors import ConfigError
from terminal.profile import Profile, PspConfig, Route

__all__ = ["build_connector", "build_router", "route_rule"]


def _public_key(profile: Profile, psp: PspConfig) -> bytes:
    if not psp.p2pe_public_key:
        raise ConfigError([
            f"routing.toml: psp {psp.name!r} has no p2pe_public_key: card data cannot be "
            "sealed for it (add the PSP's public key PEM to the profile)"
        ])
    return (profile.directory / psp.p2pe_public_key).read_bytes()


def build_connector(profile: Profile, psp: PspConfig, *, stans: StanSource | None = None,
                    api_keys: Mapping[str, str] | None = None) -> Connector:
    """The connector for one ``[[psp]]`` entry (not connected yet: links open lazily)."""
    key = _public_key(profile, psp)
    if psp.kind == "iso8583":
        if psp.host is None or psp.port is None:  # the model refuses this; narrows types
            raise ConfigError([f"routing.toml: psp {psp.name!r} needs host and port"])
        term = profile.terminal
        context = HostContext(
            connector=psp.name, acquirer_id=psp.acquirer_id or "0",
            terminal_id=term.terminal_id, merchant_id=term.merchant_id,
            merchant_name_location=term.merchant_name,
        )
        return Iso8583Connector(
            Iso8583Settings(context, psp.host, psp.port, key, timeout_s=psp.timeout_s,
                            ssl_context=ssl.create_default_context() if psp.tls else None,
                            server_hostname=psp.host if psp.tls else None),
            stans=stans,
        )
    if psp.url is None:
        raise ConfigError([f"routing.toml: psp {psp.name!r} needs url"])
    settings = RestSettings(name=psp.name, url=psp.url, p2pe_public_key=key,
                            timeout_s=psp.timeout_s,
                            api_key=(api_keys or {}).get(psp.name, "sk_test_etika"))
    if psp.kind == "stripe":
        return StripeConnector(settings)
    return PayPalConnector(settings)


def route_rule(route: Route) -> RouteRule:
    return RouteRule(
        name=route.name, connectors=tuple(route.connectors),
        networks=frozenset(route.networks), aid_prefixes=tuple(route.aid_prefixes),
        bin_ranges=tuple(route.bin_ranges), currencies=frozenset(route.currencies),
        min_amount=route.min_amount, max_amount=route.max_amount,
    )


def build_router(profile: Profile, *, stans: StanSource | None = None,
                 api_keys: Mapping[str, str] | None = None) -> Router:
    """A router over every ``[[psp]]`` of the profile, with its routes and breakers."""
    connectors = {p.name: build_connector(profile, p, stans=stans, api_keys=api_keys)
                  for p in profile.psps}
    return Router(
        [route_rule(r) for r in profile.routes],
        connectors,
        {p.name: ConnectorScope(frozenset(p.networks), frozenset(p.currencies))
         for p in profile.psps},
        breakers={p.name: BreakerSettings(p.breaker_failures, p.breaker_window_s,
                                          p.breaker_reset_s) for p in profile.psps},
    )
