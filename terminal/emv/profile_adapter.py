"""The profile → kernel configuration adapter (only ``terminal`` reads profiles).

What it decides, beyond copying values:

- **9F33 without plaintext offline PIN.** The clear PIN would have to cross the terminal
  for VERIFY ``80`` (reader and PIN pad are separate devices), so byte 2 b8 (plaintext PIN
  for ICC verification) is cleared from the profile's capabilities: the card and the CVM
  list see the terminal's real abilities. Byte 2 b5 (enciphered PIN for offline
  verification) stays as the profile says: the PIN pad enciphers the PIN for the card
  (:mod:`terminal.emv.offline_pin`).
- **Revocation.** The profile's ``crl.toml`` entries go to the CA key that signed the
  revoked issuer certificate (``Capk.revoked_serials``), where ODA checks them.
- **Contactless limits.** ``cl_transaction_limit``, ``cl_floor_limit`` (the contact floor
  limit when absent) and ``cl_cvm_limit`` of each AID in ``aids.toml``.
"""

from __future__ import annotations

from datetime import date

from terminal.emv.config import AidConfig, Capk, ContactlessLimits, KernelConfig
from terminal.profile import Profile

__all__ = ["OFFLINE_PIN_BITS", "kernel_config_from_profile"]

#: 9F33 byte 2 b8, plaintext PIN for ICC verification (EMV 4.4 Book 4 Annex A2).
OFFLINE_PIN_BITS = 0x80


def kernel_config_from_profile(profile: Profile) -> KernelConfig:
    """A :class:`KernelConfig` with the profile's terminal data, AIDs and CAPKs."""
    term = profile.terminal
    capabilities = bytearray(bytes.fromhex(term.capabilities))
    capabilities[1] &= ~OFFLINE_PIN_BITS & 0xFF
    aids = tuple(
        AidConfig(
            aid=bytes.fromhex(a.aid),
            label=a.label,
            network=a.network,
            partial_match=a.partial_match,
            application_version=bytes.fromhex(a.application_version),
            tac_denial=bytes.fromhex(a.tac_denial),
            tac_online=bytes.fromhex(a.tac_online),
            tac_default=bytes.fromhex(a.tac_default),
            floor_limit=a.floor_limit,
            random_selection_threshold=a.random_selection_threshold,
            target_percent=a.target_percent,
            max_target_percent=a.max_target_percent,
            default_tdol=bytes.fromhex(a.default_tdol),
            default_ddol=bytes.fromhex(a.default_ddol),
            contactless=a.contactless,
            contactless_limits=ContactlessLimits(
                transaction_limit=a.cl_transaction_limit,
                floor_limit=a.cl_floor_limit if a.cl_floor_limit is not None else a.floor_limit,
                cvm_required_limit=a.cl_cvm_limit,
            ),
        )
        for a in profile.aids
    )
    capks = tuple(
        Capk(
            rid=bytes.fromhex(k.rid),
            index=int(k.index, 16),
            modulus=bytes.fromhex(k.modulus),
            exponent=bytes.fromhex(k.exponent),
            expiry=k.expiry if isinstance(k.expiry, date) else None,
            revoked_serials=frozenset(
                bytes.fromhex(r.serial)
                for r in profile.revoked
                if (r.rid, r.index) == (k.rid, k.index)
            ),
        )
        for k in profile.capks
    )
    return KernelConfig(
        aids=aids,
        capks=capks,
        terminal_type=int(term.terminal_type),
        capabilities=bytes(capabilities),
        additional_capabilities=bytes.fromhex(term.additional_capabilities),
        country_code=term.country_code,
        terminal_id=term.terminal_id,
        merchant_id=term.merchant_id,
        merchant_name_location=term.merchant_name,
        mcc=term.mcc,
        ifd_serial=term.ifd_serial,
    )
