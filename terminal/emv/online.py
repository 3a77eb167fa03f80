"""Online processing: the boundary to the issuer and the issuer-to-card scripts.

- :class:`OnlineRequest` / :class:`OnlineResponse` / :class:`OnlineAuthoriser`: what the
  kernel sends to the issuer (the DE 55 material) and what comes back (ARC 8A, issuer
  authentication data 91, scripts 71/72), EMV 4.4 Book 3 §10.9;
- :func:`run_issuer_scripts`: issuer-to-card script processing (Book 3 §10.10), with the
  Issuer Script Results (9F5B, Book 4 Annex A5);
- the Authorisation Response Codes the terminal generates itself (Book 4 §6.3.6, Annex A).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from drivers.apdu import apdu_case
from drivers.base import EncryptedPin
from edge_sync.response_codes import ISO_APPROVED_ARCS
from terminal.emv.apdu import CardChannel
from terminal.emv.errors import TlvError
from terminal.emv.tlv import decode, find
from terminal.emv.tvr import Tsi, TsiBit, Tvr, TvrBit

__all__ = [
    "APPROVED_ARCS",
    "ARC_OFFLINE_APPROVED",
    "ARC_OFFLINE_DECLINED",
    "ARC_UNABLE_ONLINE_APPROVED",
    "ARC_UNABLE_ONLINE_DECLINED",
    "ICC_DATA_TAGS",
    "OnlineAuthoriser",
    "OnlineRequest",
    "OnlineResponse",
    "ScriptResults",
    "run_issuer_scripts",
]

#: Authorisation Response Codes the terminal generates (Book 4 §6.3.6 / Annex A).
ARC_UNABLE_ONLINE_APPROVED = b"Y3"
ARC_UNABLE_ONLINE_DECLINED = b"Z3"
ARC_OFFLINE_APPROVED = b"Y1"
ARC_OFFLINE_DECLINED = b"Z1"
#: Issuer ARCs that mean "approved": the PSP classifier's own table (ISO 8583 DE 39), so a
#: host approval is never a decline to the kernel.
APPROVED_ARCS = ISO_APPROVED_ARCS

#: The ICC data sent online (the usual DE 55 set, plus PAN/track 2 for the recipient only).
ICC_DATA_TAGS = frozenset(
    {0x9F26, 0x9F27, 0x9F10, 0x9F37, 0x9F36, 0x95, 0x9A, 0x9C, 0x9F02, 0x5F2A, 0x82, 0x9F1A,
     0x9F03, 0x9F33, 0x9F34, 0x9F35, 0x9F1E, 0x84, 0x9F09, 0x9F41, 0x5F34, 0x4F, 0x9F6E,
     0x5A, 0x57, 0x5F24}
)


@dataclass(frozen=True, slots=True)
class OnlineRequest:
    """What goes to the issuer: the ICC data (DE 55 material). Sensitive tags are masked in repr."""

    aid: bytes
    pan_masked: str
    icc_data: Mapping[int, bytes]
    online_pin: EncryptedPin | None = None

    def __repr__(self) -> str:
        tags = ",".join(f"{t:X}" for t in self.icc_data)
        return f"OnlineRequest(aid={self.aid.hex().upper()}, pan={self.pan_masked}, tags=[{tags}])"


@dataclass(frozen=True, slots=True)
class OnlineResponse:
    """The issuer's answer: ARC (8A), issuer authentication data (91), scripts (71/72 TLVs).

    ``issuer_data_malformed`` says the host's ICC data (DE 55) could not be decoded: the
    kernel counts that as a failed issuer authentication and keeps the ARC.
    """

    arc: bytes
    issuer_authentication_data: bytes | None = None
    scripts: bytes = b""
    authorisation_code: bytes | None = None
    issuer_data_malformed: bool = False

    @property
    def approved(self) -> bool:
        return self.arc in APPROVED_ARCS


class OnlineAuthoriser(Protocol):
    """The issuer, reached through a PSP; ``None`` means the host could not be reached."""

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None: ...


def _short_apdu(command: bytes) -> bool:
    """Whether ``command`` is a short command APDU of case 1–4 (ISO/IEC 7816-3 §12.1)."""
    try:
        apdu_case(command)
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class ScriptResults:
    """What script processing left behind: one line per script and the 9F5B bytes."""

    lines: list[str] = field(default_factory=list)
    issuer_script_results: bytes = b""


async def run_issuer_scripts(
    channel: CardChannel, scripts: bytes, template: int, tvr: Tvr, tsi: Tsi,
    into: ScriptResults,
) -> None:
    """Send the issuer scripts of ``template`` (71 or 72) to the card (Book 3 §10.10).

    A script stops at its first command answered with SW1 other than 90/62/63; TVR byte 5
    b6 (71) or b5 (72) records the failure. Undecodable script data is ignored: the issuer's
    answer stands, the scripts are simply not run.
    """
    try:
        items = decode(scripts)
    except TlvError:
        items = []
    for script in (i for i in items if i.tag == template):
        tsi.set(TsiBit.SCRIPT_PROCESSING_PERFORMED)
        script_id = find(script.children, 0x9F18)
        ident = script_id.value.hex().upper() if script_id else ""
        status = "ok"
        # Issuer Script Results (9F5B, Book 4 Annex A5): result nibble 2 = successful,
        # 1 = failed with the failing command's sequence number (1–14, 15 beyond).
        result_byte = 0x20
        commands = [c for c in script.children if c.tag == 0x86]
        for number, command in enumerate(commands, start=1):
            if not _short_apdu(command.value):
                # The host's command is not a short APDU the card could take: never sent,
                # the script fails there as a refused command would.
                status = "failed:malformed"
            else:
                response = await channel.transmit(command.value)
                if response.sw1 in (0x90, 0x62, 0x63):
                    continue
                status = f"failed:{response.sw:04X}"
            result_byte = 0x10 | min(number, 0x0F)
            tvr.set(
                TvrBit.SCRIPT_FAILED_BEFORE_FINAL_GENAC
                if template == 0x71
                else TvrBit.SCRIPT_FAILED_AFTER_FINAL_GENAC
            )
            break
        into.lines.append(f"{template:X}:{ident}:{status}")
        raw_id = (script_id.value if script_id else b"")[:4].rjust(4, b"\x00")
        into.issuer_script_results += bytes([result_byte]) + raw_id
