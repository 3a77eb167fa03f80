"""PSP simulators: an ISO 8583 acquirer host (asyncio TCP) and REST gateways modelled on
Stripe and PayPal (FastAPI), over one acquirer/issuer core with fault injection.

Public API::

    from simulators.psp import Acquirer, Iso8583Host, RestGatewayThread, parse_faults
    from simulators.psp import paypal_app, stripe_app

``etika sim psp --kind iso8583|stripe|paypal --port N [--faults SPEC]`` runs one.
"""

from simulators.psp.acquirer import Account, Acquirer, Decision, default_accounts
from simulators.psp.faults import Faults, FaultSpecError, parse_faults
from simulators.psp.iso_host import Iso8583Host
from simulators.psp.keys import private_key_path, public_key_path
from simulators.psp.paypal_gateway import paypal_app
from simulators.psp.server import RestGatewayThread
from simulators.psp.stripe_gateway import stripe_app

__all__ = [
    "Account",
    "Acquirer",
    "Decision",
    "FaultSpecError",
    "Faults",
    "Iso8583Host",
    "RestGatewayThread",
    "default_accounts",
    "parse_faults",
    "paypal_app",
    "private_key_path",
    "public_key_path",
    "stripe_app",
]
