"""The profile's ``[[psp]]`` and ``[[route]]`` entries → live connectors and a router.

Only ``terminal`` reads profiles; :mod:`edge_sync.connectors` receives values. This module
is that hand-over: one connector per ``[[psp]]`` (ISO 8583 host, Stripe-like or
PayPal-like gateway), its P2PE public key read from the profile directory, its circuit
breaker settings, and the routes as :class:`~edge_sync.connectors.routing.RouteRule`.
"""

from __future__ import annotations

import logging
import ssl
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from edge_sync.connectors import (
    Amount,
    AuthorisationRequest,
    BreakerSettings,
    CardDataEncryptor,
    CardInput,
    Connector,
    ConnectorScope,
    HostContext,
    Iso8583Connector,
    Iso8583Settings,
    PayPalConnector,
    PspResponse,
    RestSettings,
    Router,
    RouteRule,
    RoutingKey,
    StanSource,
    StripeConnector,
)
from edge_sync.connectors.base import EntryMode
from edge_sync.connectors.errors import PspError
from edge_sync.connectors.iso8583_mac import MessageAuthenticator
from edge_sync.connectors.iso8583_messages import encode_icc
from edge_sync.http_client import client_tls_context
from hsm.cards import CardData
from terminal.emv import tlv
from terminal.emv.errors import CardDataError, TlvError
from terminal.emv.kernel import OnlineRequest, OnlineResponse
from terminal.emv.online import APPROVED_ARCS
from terminal.emv.pan import expiry_from_card, pan_from_card
from terminal.errors import ConfigError
from terminal.profile import Profile, PspConfig, Route
from terminal.profile.checks import profile_file
from terminal.psp_trust import CREDENTIALS_DIR, P2pePins, read_api_key

__all__ = ["KernelAuthoriser", "build_connector", "build_router", "kernel_answer", "route_rule"]

log = logging.getLogger(__name__)


def _public_key(profile: Profile, psp: PspConfig, pins: P2pePins | None) -> bytes:
    if not psp.p2pe_public_key:
        raise ConfigError([
            f"routing.toml: psp {psp.name!r} has no p2pe_public_key: card data cannot be "
            "sealed for it (add the PSP's public key PEM to the profile)"
        ])
    try:
        pem = profile_file(profile.directory, psp.p2pe_public_key).read_bytes()
    except (ValueError, OSError) as exc:
        raise ConfigError([f"routing.toml: psp {psp.name!r} p2pe_public_key: "
                           f"{getattr(exc, 'strerror', None) or exc}"]) from None
    if pins is not None:
        pins.check(psp.name, pem)
    return pem


def _tls_context(profile: Profile, psp: PspConfig) -> ssl.SSLContext | None:
    """The (mutual) TLS context of an ISO 8583 link, or ``None`` for a loopback simulator."""
    if not psp.tls:
        return None
    try:
        cafile = profile_file(profile.directory, psp.tls_ca_file) if psp.tls_ca_file else None
        if psp.tls_cert_file and psp.tls_key_file:
            return client_tls_context(cafile, profile_file(profile.directory, psp.tls_cert_file),
                                      profile_file(profile.directory, psp.tls_key_file))
        return client_tls_context(cafile)
    except (ValueError, OSError) as exc:  # ssl.SSLError is an OSError
        raise ConfigError([f"routing.toml: psp {psp.name!r}: the TLS files cannot be used "
                           f"({exc})"]) from None


def _api_key(psp: PspConfig, api_keys: Mapping[str, str] | None,
             credentials_dir: Path | None) -> str | None:
    """The REST connector's secret: given, or from its permission-checked credentials file;
    a loopback simulator may have none; any other PSP must (issue #12 item 6)."""
    if api_keys and psp.name in api_keys:
        return api_keys[psp.name]
    if credentials_dir is not None and (credentials_dir / psp.name).exists():
        return read_api_key(credentials_dir / psp.name)
    if psp.loopback:
        return None
    where = (credentials_dir / psp.name if credentials_dir
             else f"<data dir>/{CREDENTIALS_DIR}/{psp.name}")
    raise ConfigError([f"routing.toml: psp {psp.name!r} has no credentials: write its API key "
                       f"to {where} (mode 600)"])


def build_connector(profile: Profile, psp: PspConfig, *, stans: StanSource | None = None,
                    api_keys: Mapping[str, str] | None = None,
                    credentials_dir: Path | None = None,
                    p2pe_pins: P2pePins | None = None,
                    mac_for: Callable[[str], MessageAuthenticator] | None = None
                    ) -> Connector:
    """The connector for one ``[[psp]]`` entry (not connected yet: links open lazily)."""
    key = _public_key(profile, psp, p2pe_pins)
    if psp.kind == "iso8583":
        if psp.host is None or psp.port is None:  # the model refuses this; narrows types
            raise ConfigError([f"routing.toml: psp {psp.name!r} needs host and port"])
        term = profile.terminal
        context = HostContext(
            connector=psp.name, acquirer_id=psp.acquirer_id or "0",
            terminal_id=term.terminal_id, merchant_id=term.merchant_id,
            merchant_name_location=term.merchant_name,
        )
        mac = None
        if psp.mac:
            if mac_for is None:
                raise ConfigError([f"routing.toml: psp {psp.name!r} has mac = true but no key "
                                   "store was given for its MAC key"])
            mac = mac_for(psp.name)
        return Iso8583Connector(
            Iso8583Settings(context, psp.host, psp.port, key, timeout_s=psp.timeout_s,
                            ssl_context=_tls_context(profile, psp),
                            server_hostname=psp.host if psp.tls else None, mac=mac),
            stans=stans,
        )
    if psp.url is None:
        raise ConfigError([f"routing.toml: psp {psp.name!r} needs url"])
    settings = RestSettings(name=psp.name, url=psp.url, p2pe_public_key=key,
                            timeout_s=psp.timeout_s,
                            api_key=_api_key(psp, api_keys, credentials_dir))
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


def build_router(profile: Profile, *,
                 stan_source: Callable[[str], StanSource] | None = None,
                 api_keys: Mapping[str, str] | None = None,
                 credentials_dir: Path | None = None,
                 p2pe_pins: P2pePins | None = None,
                 mac_for: Callable[[str], MessageAuthenticator] | None = None) -> Router:
    """A router over every ``[[psp]]`` of the profile, with its routes and breakers.

    ``stan_source(connector_name)`` gives each ISO 8583 connector its STAN counter — the
    terminal passes ``lambda name: SqliteStanSource(store, name)`` so STANs survive
    restarts; without it they are in memory. REST secrets come from ``api_keys`` or
    ``credentials_dir/<connector>`` (:func:`terminal.psp_trust.read_api_key`); each P2PE
    key is checked against ``p2pe_pins`` (:class:`terminal.psp_trust.P2pePins`) — the
    terminal passes both from its data directory. ``mac_for(connector_name)`` gives an
    ISO 8583 connector with ``mac = true`` its MAC (``hsm.mac.Pkcs11Cmac`` over the token).
    """
    connectors = {
        p.name: build_connector(profile, p, api_keys=api_keys, credentials_dir=credentials_dir,
                                p2pe_pins=p2pe_pins, mac_for=mac_for,
                                stans=stan_source(p.name) if stan_source else None)
        for p in profile.psps
    }
    return Router(
        [route_rule(r) for r in profile.routes],
        connectors,
        {p.name: ConnectorScope(frozenset(p.networks), frozenset(p.currencies))
         for p in profile.psps},
        breakers={p.name: BreakerSettings(p.breaker_failures, p.breaker_window_s,
                                          p.breaker_reset_s) for p in profile.psps},
    )


class KernelAuthoriser:
    """The EMV kernel's :class:`~terminal.emv.kernel.OnlineAuthoriser` over the router.

    One per payment: it seals the card data the kernel read (5A/5F24) in a P2PE envelope
    per PSP, sends the rest of the ICC data as DE 55 (card-data tags dropped), the online
    PIN block and KSN the PIN pad gave (``online_pin``, a :class:`drivers.base.EncryptedPin`),
    and gives the kernel the ARC (from the PSP's code) and tag 91 for issuer authentication. A PSP
    failure is "unable to go online" for the kernel (``None``); the error is kept in
    :attr:`error` and the answer in :attr:`response` for the transaction manager.
    """

    def __init__(self, router: Router, transaction_id: uuid.UUID, amount: Amount, *,
                 network: str, capture: bool = True,
                 entry_mode: EntryMode = EntryMode.CHIP) -> None:
        self.router = router
        self.transaction_id = transaction_id
        self.amount = amount
        self.network = network
        self.capture = capture
        self.entry_mode = entry_mode
        self.response: PspResponse | None = None
        self.error: PspError | None = None

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        icc = dict(request.icc_data)
        pan, expiry = pan_from_card(icc), expiry_from_card(icc)
        if pan is None or expiry is None:
            raise CardDataError("the card gave no PAN or expiry to seal for the PSP", tag=0x5A)
        pin = request.online_pin
        pin_block, ksn = (None, None) if pin is None else (pin.pin_block, pin.ksn)
        psn = icc.get(0x5F34)
        try:
            card = CardInput(
                encryptor=CardDataEncryptor(CardData(pan, expiry)), entry_mode=self.entry_mode,
                emv_data=encode_icc(icc), pan_sequence=psn.hex() if psn else None,
                pin_block=pin_block, ksn=ksn, masked_pan=request.pan_masked,
            )
        except ValueError as exc:
            # The card's own data (a PAN failing Luhn, an expiry month 13, an oversized
            # data object for DE 55) cannot be sent: the card's data error, not a crash.
            # The messages of CardData and encode_icc never carry the clear PAN.
            raise CardDataError(f"the card's data cannot be sent online: {exc}") from exc
        key = RoutingKey(network=self.network, currency=self.amount.currency,
                         amount_minor=self.amount.minor, aid=request.aid.hex().upper(),
                         bin=pan[:8])
        try:
            self.response = await self.router.authorise(
                AuthorisationRequest(self.transaction_id, self.amount, card,
                                     capture=self.capture, network=self.network), key)
        except PspError as exc:
            log.warning("online authorisation %s failed: %s", self.transaction_id, exc)
            self.error = exc
            return None
        return kernel_answer(self.response, str(self.transaction_id))


def kernel_answer(response: PspResponse, transaction: str = "") -> OnlineResponse:
    """What the kernel is told of the host's answer: the ARC, tag 91, the issuer scripts (71/72)
    and the approval code.

    Never raises: the host has decided, and its decision must reach GENERATE AC 2 (and the
    transaction manager, which reverses or completes it). The ARC (tag 8A) is two ASCII
    alphanumerics (EMV Book 3 Annex A) that agree with the PSP's outcome — a PSP's own
    longer or odd code becomes the generic approve/decline ARC, and a decline never
    carries an approving ARC. Issuer data that cannot be read (DE 55 undecodable, or the
    connector flagged it) is an issuer authentication failure for the kernel (Book 3
    §10.9); the decision stands.
    """
    code = response.code
    usable = len(code) == 2 and code.isascii() and code.isalnum()
    if response.approved:
        arc = code if usable and code.encode("ascii") in APPROVED_ARCS else "00"
    else:
        arc = code if usable and code.encode("ascii") not in APPROVED_ARCS else "05"
    issuer_data, malformed, scripts = None, response.issuer_data_malformed, b""
    if response.emv_data:
        try:
            objects = tlv.decode(response.emv_data)
        except TlvError:
            log.warning("online authorisation %s: the host's DE 55 is malformed", transaction)
            objects, malformed = [], True
        found = tlv.find(objects, 0x91)
        issuer_data = found.value if found is not None else None
        # Issuer scripts (71 before, 72 after GENERATE AC 2; Book 3 §10.10) go to the card
        # as the host sent them; the kernel runs them and reports their results in 9F5B.
        scripts = b"".join(tlv.encode(o.tag, o.value) for o in objects
                           if o.tag in (0x71, 0x72))
    approval = response.reference.approval_code
    return OnlineResponse(
        arc=arc.encode("ascii"), issuer_authentication_data=issuer_data, scripts=scripts,
        authorisation_code=approval.encode("ascii") if approval and approval.isascii()
        else None,
        issuer_data_malformed=malformed)
