"""EMV card simulator: honest cards for the kernel's tests, the demo and the real stack.

Public API::

    from simulators.card import in_process_reader, EmvCard, get_profile, PROFILES, issuer

    reader = in_process_reader("visa-credit")                  # a CardReader, card inserted
    reader = in_process_reader("visa-credit", "contactless")   # qVSDC over "PPSE"
    reader = in_process_reader("mastercard-debit", faults=("tamper-sdad",))
    card = EmvCard(get_profile("cb"))                          # drive APDUs yourself
    VpcdCard(card).run()                                       # or serve it to pcscd via vpcd

* profiles: :data:`simulators.card.profiles.PROFILES` (names listed in that module);
* issuer side (ARQC verification, ARPC, script MACs): :mod:`simulators.card.issuer`;
* test PKI (deterministic CA/issuer/ICC RSA keys, CAPKs): :mod:`simulators.card.pki`,
  :func:`simulators.card.personalise.ca_key`, :mod:`simulators.card.capks`.
"""

from simulators.card import issuer
from simulators.card.card import EmvCard
from simulators.card.profiles import FAULTS, PROFILES, CardProfile, Interface, get_profile
from simulators.card.reader import SimulatedCardReader, in_process_reader
from simulators.card.vpcd import VPCD_PORT, VpcdCard, VpcdCardThread

__all__ = [
    "FAULTS",
    "PROFILES",
    "VPCD_PORT",
    "CardProfile",
    "EmvCard",
    "Interface",
    "SimulatedCardReader",
    "VpcdCard",
    "VpcdCardThread",
    "get_profile",
    "in_process_reader",
    "issuer",
]
