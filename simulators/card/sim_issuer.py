"""The simulated cards' test issuer as an :class:`~terminal.emv.kernel.OnlineAuthoriser`.

Used by ``etika card transact --simulated PROFILE --issuer simulated`` only, reached through
the ``etika.card_readers`` entry point (:mod:`simulators.card.plugin`): the product never
imports the simulators. It is honest: the ARQC is verified
with the issuer master keys (:mod:`simulators.card.issuer`, pyemv); a cryptogram that does
not verify is declined (ARC ``05``), an expired card too (``54``); an approval carries
the ARPC the card checks, by the method the card profile expects.
"""

from __future__ import annotations

from typing import Any

from simulators.card import issuer
from simulators.card.profiles import ArpcMode
from terminal.emv.kernel import OnlineRequest, OnlineResponse
from terminal.emv.pan import pan_from_card

__all__ = ["SimulatedIssuer"]

_APPROVED = b"00"
_DECLINED = b"05"
_EXPIRED = b"54"
_CSU_APPROVED = bytes.fromhex("00800000")
_CSU_DECLINED = bytes.fromhex("00000000")


class SimulatedIssuer:
    def __init__(self, card_profile: Any) -> None:
        self.card_profile = card_profile

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        app = next((a for a in self.card_profile.apps
                    if bytes.fromhex(a.aid) == request.aid), None)
        if app is None:
            return None
        tags = dict(request.icc_data)
        pan = pan_from_card(tags) or ""
        psn = int(tags.get(0x5F34, b"\x00").hex() or "0")
        keys = issuer.issuer_master_keys(app.issuer)
        arqc, atc = tags.get(0x9F26, b""), tags.get(0x9F36, b"")
        try:
            issuer.verify_arqc(keys, pan, psn, tags, arqc)
        except (issuer.CryptogramMismatchError, ValueError):
            return OnlineResponse(arc=_DECLINED)
        # The issuer knows its cards' expiry dates: an expired card is declined (ARC 54).
        today = tags.get(0x9A, b"")
        if today and today.hex() > app.expiry:
            return OnlineResponse(arc=_EXPIRED)
        if app.arpc is ArpcMode.METHOD2_GENAC2:
            iad = issuer.arpc_method_2(keys, pan, psn, atc, arqc, _CSU_APPROVED)
        else:
            iad = issuer.arpc_method_1(keys, pan, psn, atc, arqc, _APPROVED)
        return OnlineResponse(arc=_APPROVED, issuer_authentication_data=iad)
