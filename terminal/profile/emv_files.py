"""The models of ``aids.toml`` (the applications the terminal takes: TACs, floor limits,
random selection, TDOL/DDOL) and ``capks.toml`` (the certification authority public keys,
their SHA-1 checksum verified at load)."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)

from terminal.profile.fields import (
    Aid,
    Hex1,
    Hex2,
    Hex5,
    MinorUnits,
    Network,
    Percent,
    PrintableText,
    StrictModel,
    hex_digits,
    hex_range,
)

__all__ = [
    "AidConfig",
    "AidsFile",
    "Capk",
    "CapksFile",
]


# --- aids.toml ---------------------------------------------------------------------------

#: A DOL's data goes in one short APDU (Lc at most 255, less the few bytes of a template).
_MAX_DOL_DATA = 252


def _dol_entries(value: str) -> list[tuple[int, int]]:
    # A default TDOL or DDOL the kernel cannot parse failed every transaction that needed it
    # (a DolError in the TC hash, DDA failing on each card without a DDOL): refused here.
    # Imported here: the EMV package pulls the kernel in, which a profile load need not.
    from terminal.emv.dol import dol_length, parse_dol
    from terminal.emv.errors import DolError

    try:
        entries = parse_dol(bytes.fromhex(hex_digits()(value)))
    except DolError as exc:
        raise ValueError(f"is not a data object list (EMV Book 3 §5.4): {exc}") from None
    if dol_length(entries) > _MAX_DOL_DATA:
        raise ValueError(f"asks for more than {_MAX_DOL_DATA} bytes of data")
    return entries


def _dol(value: str) -> str:
    _dol_entries(value)
    return value.upper()


def _ddol(value: str) -> str:
    if not any(tag == 0x9F37 for tag, _ in _dol_entries(value)):
        # Book 2 §6.5.1: the default DDOL holds the unpredictable number.
        raise ValueError("must ask for the unpredictable number (9F37), EMV Book 2 §6.5.1")
    return value.upper()


Dol = Annotated[str, AfterValidator(_dol)]
Ddol = Annotated[str, AfterValidator(_ddol)]


class AidConfig(StrictModel):
    name: Annotated[PrintableText, Field(min_length=1, max_length=64)]
    network: Network
    aid: Aid
    label: Annotated[PrintableText, Field(min_length=1, max_length=16)]
    partial_match: bool = True
    application_version: Hex2
    tac_denial: Hex5
    tac_online: Hex5
    tac_default: Hex5
    floor_limit: MinorUnits
    random_selection_threshold: MinorUnits
    target_percent: Percent
    max_target_percent: Percent
    default_tdol: Dol
    default_ddol: Ddol
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


class AidsFile(StrictModel):
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


class Capk(StrictModel):
    rid: Hex5
    index: Hex1
    modulus: Annotated[str, AfterValidator(hex_range(64, 248))]
    exponent: Annotated[str, Field(pattern=r"^(03|010001)$")]
    expiry: date
    checksum: Annotated[str, AfterValidator(hex_digits(20))]

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


class CapksFile(StrictModel):
    capk: Annotated[list[Capk], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> CapksFile:
        keys = [(c.rid, c.index) for c in self.capk]
        if len(set(keys)) != len(keys):
            raise ValueError("a (rid, index) pair is listed twice")
        return self
